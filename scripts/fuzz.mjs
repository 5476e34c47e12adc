#!/usr/bin/env node
// `npm run fuzz`: the fuzz tests (__test__/fuzz-*.test.mjs) on Node 22, Node 24 and Bun,
// 100 times longer than inside `npm test` and from a fresh seed, printed first so that a
// failure can be replayed: `FUZZ_SEED=<seed> npm run fuzz`. FUZZ_SCALE sets the length.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const seed = process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 32));
const scale = process.env.FUZZ_SCALE ?? "100";
console.log(`fuzzing with FUZZ_SEED=${seed} FUZZ_SCALE=${scale}`);
const r = spawnSync(process.execPath, [path.join(root, "scripts", "test.mjs"), "fuzz-"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_SCALE: scale },
});
process.exit(r.status ?? 1);
