// The physical reference: raw rusqlite (bench/rusqlite-anchor, same SQLite build as the
// addon) doing the same storage work, with SQLite's `synchronous` setting matching our
// durability mode: FULL for "full" (fsync inside COMMIT), NORMAL for "relaxed".
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CRATE = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "rusqlite-anchor");
const BIN = path.join(CRATE, "target", "release", "rusqlite-anchor");

/** `cargo build --release` of the anchor (about a minute the first time, then a no-op). */
export function buildRusqliteAnchor() {
  try {
    execFileSync("cargo", ["build", "--release", "--quiet", "--manifest-path", path.join(CRATE, "Cargo.toml")], {
      stdio: ["ignore", "inherit", "inherit"],
    });
  } catch (e) {
    throw new Error(`Could not build the rusqlite anchor (bench/rusqlite-anchor) with cargo: ${e.message}`);
  }
}

/** The SQLite version the anchor (and the addon: both use rusqlite 0.43, bundled) runs. */
export const sqliteVersion = () => call(["version"]).sqlite;

function call(args) {
  return JSON.parse(execFileSync(BIN, args.map(String), { encoding: "utf8" }));
}

/**
 * Runs `kase` (kv_upsert, kv_get, insert, put_each; see src/main.rs) `reps` times on fresh
 * databases in `dir`, after `warmup` untimed repetitions. Returns { ms: [...], sqlite }.
 */
export function rusqlite(kase, { n, reps = 1, sync, dir, warmup = 0 }) {
  return call([kase, n, reps, sync, dir, warmup]);
}

/** fsync rate of the disk under `dir`: append 4 KiB + fsync, `n` times. */
export function fsyncProbe(dir, n = 1000) {
  return call(["fsync-probe", n, dir]);
}
