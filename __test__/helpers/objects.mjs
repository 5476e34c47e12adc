// Shared helpers: a registry per test, and a way to run code inside an object.
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
