// Helpers shared by the benchmark suites and their anchors.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Monotonic clock in milliseconds. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

export const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs `f(i)` for every i < n, `conc` at a time (each worker takes the next i). */
export async function each(n, conc, f) {
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      for (let i = next++; i < n; i = next++) await f(i);
    }),
  );
}

/** Times `f` (sync or async) from outside, in ms. */
export async function timed(f) {
  const t0 = now();
  await f();
  return now() - t0;
}

/**
 * A measurement: `n` operations per repetition and each repetition's wall time in ms.
 * `ops` is n / median time (ops/s).
 */
export function summary(n, ms) {
  return { n, ms, ops: n / (median(ms) / 1000) };
}

/**
 * A temporary folder under os.tmpdir() (the same disk for us and every anchor), removed
 * when the process exits, also on Ctrl-C.
 */
export function tempRoot(tag) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  process.once("exit", remove);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      remove();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
  /** A fresh subfolder `name`. */
  const sub = (name) => {
    const p = path.join(dir, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  };
  return { dir, sub, remove };
}

/** "1.23M", "456k", "789" */
export function fmtOps(ops) {
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)}M`;
  if (ops >= 1e4) return `${(ops / 1e3).toFixed(0)}k`;
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(1)}k`;
  return ops.toFixed(0);
}
