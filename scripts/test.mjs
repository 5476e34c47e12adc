#!/usr/bin/env node
// `npm test`: clippy and the Rust engine's unit tests, then the JS suite on Node 22, Node 24 and Bun
// (all three come from devDependencies). Ends with one "N passed, N failed" line.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (...p) => path.join(root, "node_modules", ...p);
const only = process.argv.slice(2); // e.g. `npm test -- storage` runs matching files only

const files = fs
  .readdirSync(path.join(root, "__test__"))
  .filter((f) => f.endsWith(".test.mjs") && (only.length === 0 || only.some((o) => f.includes(o))))
  .sort()
  .map((f) => path.join("__test__", f));

let passed = 0;
let failed = 0;
const summary = [];

function run(label, cmd, args, parse) {
  console.log(`\n=== ${label}: ${[path.relative(root, cmd) || cmd, ...args].join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 28 });
  process.stdout.write(r.stdout ?? "");
  process.stderr.write(r.stderr ?? "");
  const counts = parse(`${r.stdout}\n${r.stderr}`);
  if (counts === undefined || (r.status !== 0 && counts.failed === 0)) {
    // A crash or a runner error counts as a failure even when no test reported one.
    failed += 1;
    summary.push(`${label}: runner failed (exit ${r.status ?? r.signal})`);
    return;
  }
  passed += counts.passed;
  failed += counts.failed;
  summary.push(`${label}: ${counts.passed} passed, ${counts.failed} failed`);
}

const hostTriple = /host: (\S+)/.exec(spawnSync("rustc", ["-vV"], { encoding: "utf8" }).stdout)?.[1];
if (only.length === 0) {
  // Lints first (any warning fails), then the engine's tests in a debug build, where
  // debug assertions and overflow checks are on.
  run("cargo clippy", "cargo", ["clippy", "--release", "--all-targets", "--quiet", "--", "-D", "warnings"], (out) =>
    /^(error|warning)/m.test(out) ? { passed: 0, failed: 1 } : { passed: 1, failed: 0 },
  );
  run("cargo test", "cargo", ["test", "--target", hostTriple, "--quiet"], (out) => {
    const results = [...out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)];
    if (results.length === 0) return undefined;
    return results.reduce((a, m) => ({ passed: a.passed + +m[1], failed: a.failed + +m[2] }), { passed: 0, failed: 0 });
  });
}

const nodeTap = (out) => {
  const p = /^# pass (\d+)/m.exec(out);
  const f = /^# fail (\d+)/m.exec(out);
  return p && f ? { passed: +p[1], failed: +f[1] } : undefined;
};
const nodeArgs = ["--test", "--test-reporter=tap", "--test-timeout=120000", "--test-concurrency=1", ...files];
run("node 22", bin("node22", "bin", "node"), nodeArgs, nodeTap);
run("node 24", bin("node24", "bin", "node"), nodeArgs, nodeTap);
run("bun", bin(".bin", "bun"), ["test", "--timeout=120000", ...files.map((f) => `./${f}`)], (out) => {
  const p = /^\s*(\d+) pass/m.exec(out);
  const f = /^\s*(\d+) fail/m.exec(out);
  return p && f ? { passed: +p[1], failed: +f[1] } : undefined;
});

console.log(`\n${summary.join("\n")}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
