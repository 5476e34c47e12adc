// Replaying a project's `migrations` in order, as wrangler does
// (packages/wrangler/src/dev/class-names-sqlite.ts), to learn which classes exist and
// whether each is SQLite-backed or KV-backed — or reading the same from the declarative
// `exports` that newer wranglers accept instead.
import { ConfigError } from "./config.js";

export type StorageBackend = "sqlite" | "kv";

export interface Migration {
  tag?: string;
  new_classes?: string[];
  new_sqlite_classes?: string[];
  renamed_classes?: { from: string; to: string }[];
  deleted_classes?: string[];
  transferred_classes?: unknown[];
}

/** The live classes after every migration, with their storage backend. */
export function replayMigrations(migrations: Migration[], label = "wrangler config"): Map<string, StorageBackend> {
  const classes = new Map<string, StorageBackend>();
  const tags = new Set<string>();
  for (const [i, m] of migrations.entries()) {
    const where = `${label}: migration ${m?.tag !== undefined ? `"${m.tag}"` : `#${i + 1}`}`;
    if (m === null || typeof m !== "object") throw new ConfigError(`${where} must be a table.`);
    if (m.tag !== undefined) {
      if (tags.has(m.tag)) throw new ConfigError(`${where}: the tag is used twice.`);
      tags.add(m.tag);
    }
    // Within one migration: deletions, renames, then new classes (wrangler's order).
    for (const name of list(m.deleted_classes, where, "deleted_classes")) {
      if (!classes.delete(name)) throw new ConfigError(`${where} deletes ${name}, which does not exist at that point.`);
    }
    for (const rename of list(m.renamed_classes, where, "renamed_classes")) {
      const backend = classes.get(rename.from);
      if (backend === undefined) throw new ConfigError(`${where} renames ${rename.from}, which does not exist at that point.`);
      if (classes.has(rename.to)) throw new ConfigError(`${where} renames ${rename.from} to ${rename.to}, which already exists.`);
      classes.delete(rename.from);
      classes.set(rename.to, backend);
    }
    for (const [key, backend] of [
      ["new_classes", "kv"],
      ["new_sqlite_classes", "sqlite"],
    ] as const) {
      for (const name of list(m[key], where, key)) {
        if (classes.has(name)) throw new ConfigError(`${where} creates ${name}, which already exists; a class's storage cannot change.`);
        classes.set(name, backend);
      }
    }
  }
  return classes;
}

function list<T>(value: T[] | undefined, where: string, key: string): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${where}: "${key}" must be a list.`);
  return value;
}

/** A Durable Object class as the declarative `exports` field describes it. */
interface DeclaredExport {
  type?: string;
  storage?: string;
  state?: string;
}

const LIVE_STATES = new Set([undefined, "created", "expecting-transfer"]);
const GONE_STATES = new Set(["deleted", "renamed", "transferred"]);

/**
 * The live classes the declarative `exports` field names, with their storage backend:
 * `{ "ChatRoom": { "type": "durable-object", "storage": "sqlite" | "legacy-kv", "state"? } }`.
 * A class whose state is deleted, renamed or transferred no longer exists under its name.
 */
export function declaredExports(exports: unknown, label = "wrangler config"): Map<string, StorageBackend> {
  if (exports === null || typeof exports !== "object" || Array.isArray(exports)) throw new ConfigError(`${label}: "exports" must be a table of class names.`);
  const classes = new Map<string, StorageBackend>();
  for (const [name, entry] of Object.entries(exports as Record<string, DeclaredExport>)) {
    if (entry === null || typeof entry !== "object") throw new ConfigError(`${label}: exports.${name} must be a table.`);
    if (entry.type !== "durable-object") continue;
    if (!LIVE_STATES.has(entry.state) && !GONE_STATES.has(entry.state!)) {
      throw new ConfigError(`${label}: exports.${name} has an unknown "state" ${JSON.stringify(entry.state)}.`);
    }
    if (GONE_STATES.has(entry.state!)) continue;
    const storage = entry.storage ?? "sqlite";
    if (storage !== "sqlite" && storage !== "legacy-kv") {
      throw new ConfigError(`${label}: exports.${name} has "storage" ${JSON.stringify(storage)}; it is "sqlite" or "legacy-kv".`);
    }
    classes.set(name, storage === "sqlite" ? "sqlite" : "kv");
  }
  return classes;
}
