// Shared by the fuzz tests (fuzz-*.test.mjs): a seeded random source and how long to run.
//
// Inside `npm test` each fuzz test runs a fixed number of cases from a fixed seed, so a
// failure reproduces exactly. `npm run fuzz` runs the same tests 100 times longer with a
// seed of the clock's choosing (printed); `FUZZ_SEED=<n>` replays a seed, `FUZZ_SCALE=<k>`
// sets the length.

/** The seed every fuzz test starts from: FUZZ_SEED, else fixed. */
export const FUZZ_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x0d0f2026;

/** Multiplies each test's case count: FUZZ_SCALE, else 1. */
export const FUZZ_SCALE = process.env.FUZZ_SCALE !== undefined ? Math.max(1, Number(process.env.FUZZ_SCALE) || 1) : 1;

/** How many cases a test with `base` cases runs now. */
export function fuzzCases(base) {
  return Math.round(base * FUZZ_SCALE);
}

/**
 * A small, fast, seeded generator (mulberry32), with the helpers fuzzers need. `tag`
 * separates the streams of different tests run from one seed.
 */
export function fuzzRandom(tag = "") {
  let state = FUZZ_SEED;
  for (let i = 0; i < tag.length; i++) state = Math.imul(state ^ tag.charCodeAt(i), 0x9e3779b1) >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const random = {
    /** In [0, 1). */
    next,
    /** An integer in [0, n). */
    int: (n) => Math.floor(next() * n),
    /** True with probability p. */
    chance: (p) => next() < p,
    /** One element of `items`. */
    pick: (items) => items[Math.floor(next() * items.length)],
    /** `n` random bytes. */
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
    /** A string of `n` UTF-16 code units, lone surrogates and controls included. */
    string: (n) => {
      let s = "";
      for (let i = 0; i < n; i++) {
        const kind = Math.floor(next() * 10);
        if (kind < 5) s += String.fromCharCode(32 + Math.floor(next() * 95));
        else if (kind < 6) s += String.fromCharCode(Math.floor(next() * 32));
        else if (kind < 7) s += String.fromCharCode(0xd800 + Math.floor(next() * 0x800));
        else s += String.fromCharCode(Math.floor(next() * 0x10000));
      }
      return s;
    },
  };
  return random;
}

/** Says which seed a failing run used, so that it can be replayed. */
export function describeSeed() {
  return `FUZZ_SEED=${FUZZ_SEED} FUZZ_SCALE=${FUZZ_SCALE}`;
}
