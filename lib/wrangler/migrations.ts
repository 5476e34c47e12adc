// Replaying a project's `migrations` in order, as wrangler does
// (packages/wrangler/src/dev/class-names-sqlite.ts), to learn which classes exist and
// whether each is SQLite-backed or KV-backed.
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
