// The seed README's example, run verbatim from examples/seed (TypeScript) in a child
// process of the same runtime: Bun runs TypeScript itself; Node runs it through tsx.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { isBun, tempDir } from "./helpers/objects.mjs";

const main = path.join(import.meta.dirname, "..", "examples", "seed", "main.ts");

function runSeed(cwd) {
  const args = isBun ? [main] : ["--import", import.meta.resolve("tsx"), main];
  const r = spawnSync(process.execPath, args, { cwd, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("the README example prints 1, then 2 on the next run (default data folder)", { timeout: 60_000 }, () => {
  const cwd = tempDir("seed");
  assert.equal(runSeed(cwd), "1");
  assert.equal(runSeed(cwd), "2");
});
