// Micro-benchmark of the structured-clone codec (not part of the test suite).
//
//   node_modules/.bin/tsc -p . && node bench/micro/structured-clone.mjs
//   bun bench/micro/structured-clone.mjs
//
// Prints nanoseconds per call for ValueEncoder#encode (no copy), serialize()
// (with copy) and deserialize(), and on Node the same for V8's own
// v8.Serializer / v8.Deserializer for reference. The codec is first warmed up
// with many object shapes so that its call sites are megamorphic, as they are
// in real use. Times are process CPU time (robust against other load on the
// machine), best of several batches.
import { ValueEncoder, serialize, deserialize } from "../../dist/structured-clone.js";

const isBun = typeof process.versions.bun === "string";
const v8 = isBun ? null : await import("node:v8");

const cases = {
  "small int": 42,
  double: 3.14159,
  "short ASCII string": "hello world",
  "3-field object": { id: 123, name: "alice", active: true },
  "array of 10 ints": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  "nested object": { user: { id: 1, tags: ["a", "b"], profile: { age: 30, city: "Zürich" } }, n: 1.5 },
  "1 KiB ASCII string": "x".repeat(1024),
  "Map of 10": new Map(Array.from({ length: 10 }, (_, i) => [`k${i}`, i])),
  "Uint8Array(64)": new Uint8Array(64),
};

const enc = new ValueEncoder();
const shapes = [];
for (let i = 0; i < 40; i++) {
  const o = { x: "y" };
  o[`k${i}`] = i;
  shapes.push(o, [i, "a"], new Map([[i, i]]), `str${i}`, i * 1.5);
}
for (let r = 0; r < 2000; r++) for (const s of shapes) deserialize(enc.encode(s));

function nsPerCall(fn, arg) {
  let best = Infinity;
  for (let batch = 0; batch < 9; batch++) {
    const n = 100_000;
    const start = process.cpuUsage();
    for (let i = 0; i < n; i++) fn(arg);
    const used = process.cpuUsage(start);
    best = Math.min(best, ((used.user + used.system) * 1000) / n);
  }
  return Math.round(best);
}

const rows = [];
for (const [name, value] of Object.entries(cases)) {
  const bytes = serialize(value);
  const row = {
    case: name,
    bytes: bytes.length,
    "encode ns": nsPerCall((v) => enc.encode(v), value),
    "serialize ns": nsPerCall(serialize, value),
    "deserialize ns": nsPerCall(deserialize, bytes),
  };
  if (v8) {
    row["v8.Serializer ns"] = nsPerCall((v) => {
      const s = new v8.Serializer();
      s.writeHeader();
      s.writeValue(v);
      return s.releaseBuffer();
    }, value);
    row["v8.Deserializer ns"] = nsPerCall((b) => {
      const d = new v8.Deserializer(b);
      d.readHeader();
      return d.readValue();
    }, bytes);
  }
  rows.push(row);
}
console.log(isBun ? `bun ${process.versions.bun}` : `node ${process.version}`);
console.table(rows);
