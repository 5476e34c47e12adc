// Compatibility dates and flags that change Durable Object behaviour (reference §2.17):
// each flag is on from its date, or when named in compatibility_flags, and off when its
// "no_" form is named.

/** Flags that matter to Durable Objects, with the date each became the default. */
export const DATED_FLAGS = {
  durable_object_fetch_requires_full_url: "2021-11-10",
  rpc: "2024-04-03",
  enable_ctx_exports: "2025-11-17",
  rpc_params_dup_stubs: "2026-01-20",
  delete_all_deletes_alarm: "2026-02-24",
  websocket_close_reason_byte_limit: "2026-03-03",
  websocket_standard_binary_type: "2026-03-17",
  web_socket_auto_reply_to_close: "2026-04-07",
  enhanced_error_serialization: "2026-04-21",
} as const;

export type CompatFlag = keyof typeof DATED_FLAGS;
export type CompatFlags = Record<CompatFlag, boolean>;

/** The flags in effect for `date` (default: today, as wrangler warns and uses) and `flags`. */
export function compatFlags(date: string | undefined, flags: readonly string[] = []): CompatFlags {
  const on = date ?? new Date().toISOString().slice(0, 10);
  const result = {} as CompatFlags;
  for (const [flag, since] of Object.entries(DATED_FLAGS) as [CompatFlag, string][]) {
    result[flag] = flags.includes(`no_${flag}`) ? false : flags.includes(flag) || on >= since;
  }
  return result;
}
