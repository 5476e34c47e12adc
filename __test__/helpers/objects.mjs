// Shared helpers: a registry per test, and a way to run code inside an object.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DurableObject, Registry, runInDurableObject } from "../../index.js";

export class Plain extends DurableObject {}

export const isBun = typeof globalThis.Bun !== "undefined";

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(tag = "open-do") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs `__test__/fixtures/<name>` with `args` in a process of this runtime limited to 256
 * file descriptors (so that 48 database files may be open at once), and returns the JSON
 * its last line of output reports. Fails the test if the process failed.
 */
export function runFixtureUnderFdLimit(name, args, env = {}) {
  const script = path.join(import.meta.dirname, "..", "fixtures", name);
  const r = spawnSync("sh", ["-c", `ulimit -n 256 && exec "$0" "$@"`, process.execPath, script, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 280_000,
  });
  if (r.status !== 0) throw new Error(`${name} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}

/** Runs `fn(storage, ctx, instance)` inside a fresh object of a fresh registry. */
export async function inObject(fn, { dataDir = ":memory:", Class = Plain, name = "test", registry } = {}) {
  const r = registry ?? new Registry({ dataDir });
  try {
    const stub = await r.get(name, Class);
    return await runInDurableObject(stub, (instance, ctx) => fn(ctx.storage, ctx, instance));
  } finally {
    if (!registry) await r.close();
  }
}
