// The Rust addon (src/binding) and the buffers results come back in.
//
// Storage calls are synchronous and return results by writing into `out`, a buffer we
// own and reuse, instead of allocating a Buffer per call (see src/binding/output.rs). A
// length larger than the buffer means the result did not fit; `takeOverflow()` hands it
// over. Everything here runs on the JS thread, so one shared buffer is safe as long as a
// result is decoded before the next native call.
import { createRequire } from "node:module";
import type * as Binding from "../binding.cjs";

export interface NativeBinding {
  storageOpen(dataDir: string, uniqueKey: string, idHex: string, durability: string, sqlTimeLimitMs: number): number;
  storageClose(handle: number): void;
  storageRekey(handle: number): number;
  checkNamespaceKey(uniqueKey: string): void;
  namespaceLock(dataDir: string, uniqueKey: string): number | null;
  namespaceUnlock(lock: number): void;
  storageOpenFiles(): number;
  storageFileBudget(): number;
  storageCloseIdleFiles(idleMs: number): number;
  kvGet(handle: number, key: Uint8Array, keyLength: number, out: Uint8Array): number;
  kvPut(handle: number, key: Uint8Array, keyLength: number, value: Uint8Array): void;
  kvDelete(handle: number, key: Uint8Array, keyLength: number): boolean;
  kvGetMany(handle: number, keys: Uint8Array, keysLength: number, out: Uint8Array): number;
  kvList(handle: number, options: Uint8Array, optionsLength: number, reverse: boolean, limit: number | undefined, out: Uint8Array): number;
  deleteAll(handle: number): void;
  alarmGet(handle: number): number | null;
  alarmSet(handle: number, millis: number | null, name?: string): void;
  localBookmarkNext(handle: number): number;
  alarmForget(handle: number): void;
  alarmIndexClose(dataDir: string, uniqueKey: string): void;
  alarmIndexEntries(dataDir: string, uniqueKey: string): { id: string; name?: string | null; time: number }[];
  sqlPrepare(handle: number, query: string): number;
  sqlForget(handle: number, stmtId: number): void;
  sqlColumns(handle: number, stmtId: number): string[];
  sqlExec(handle: number, stmtId: number, params: Uint8Array, paramsLength: number, out: Uint8Array): number;
  sqlExecText(handle: number, query: string, params: Uint8Array, paramsLength: number, out: Uint8Array): number;
  sqlNext(handle: number, cursor: number, out: Uint8Array): number;
  sqlCloseCursor(handle: number, cursor: number): void;
  databaseSize(handle: number): number;
  savepointBegin(handle: number): number;
  savepointEnd(handle: number, commit: boolean): void;
  commit(handle: number): number;
  rollback(handle: number): void;
  syncInit(done: (result: [token: number, durable: number, error: string | null]) => void, maxThreads: number): void;
  syncStart(handle: number, token: number): number;
  syncObjectNow(handle: number): number;
  commitPosition(handle: number): [committed: number, durable: number];
  syncsCompleted(): number;
  takeOverflow(): Uint8Array;
  idFromName(uniqueKey: string, name: string, jurisdiction?: string): string;
  idFromWtf8Name(uniqueKey: string, name: Uint8Array, jurisdiction?: string): string;
  newUniqueId(uniqueKey: string, jurisdiction?: string): string;
  parseId(uniqueKey: string, text: string): { hex: string; jurisdiction?: string | null };
  alarmTimerInit(fire: (keys: number[]) => void): void;
  alarmTimerSchedule(key: number, atMs: number): void;
  alarmTimerCancel(key: number): void;
  mailboxOpen(capacity: number): number;
  mailboxClose(handle: number): void;
  mailboxOffer(handle: number, token: number): number;
  mailboxDeliver(handle: number): number;
  mailboxFinished(handle: number): number;
  mailboxEnterCritical(handle: number): boolean;
  mailboxExitCritical(handle: number): boolean;
  mailboxReset(handle: number): number[];
  mailboxIdle(handle: number): boolean;
}

const require = createRequire(import.meta.url);
/** The network half of the addon (src/binding/net.rs), typed from its generated declarations. */
export type NetBinding = { [K in keyof typeof Binding as K extends `net${string}` ? K : never]: (typeof Binding)[K] };

export const native: NativeBinding & NetBinding = require("../binding.cjs");

/** The shared result buffer. Grows (never shrinks below 64 KiB) when results overflow. */
export let out = new Uint8Array(64 * 1024);
export let outView = new DataView(out.buffer);

/**
 * The bytes of a result of `length` bytes: a view of `out` when it fit, else the
 * overflow (and `out` grows so the next result of this size fits).
 */
export function result(length: number): Uint8Array {
  if (length <= out.length) return out;
  const bytes = native.takeOverflow();
  if (length <= 16 * 1024 * 1024) {
    let size = out.length;
    while (size < length) size *= 2;
    out = new Uint8Array(size);
    outView = new DataView(out.buffer);
  }
  return bytes;
}
