// Micro-benchmark of the structured-clone codec (not part of the test suite).
//   node bench/micro/structured-clone.mjs      (after `tsc -p .`)
//   bun bench/micro/structured-clone.mjs
// Prints ns per operation for encode (ValueEncoder.encode, no copy),
// serialize (with copy) and deserialize, and on Node the same for
// v8.Serializer / v8.Deserializer for reference.
import { ValueEncoder, serialize, deserialize } from "../../dist/structured-clone.js";

const isBun = typeof process.versions.bun === "string";
const v8 = isBun ? null : await import("node:v8");

const cases = {
  "small int": 42,
  "double": 3.14159,
  "short ascii string": "hello world",
  "3-field object": { id: 123, name: "alice", active: true },
  "array of 10 ints": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  "nested object": { user: { id: 1, tags: ["a", "b"], profile: { age: 30, city: "Zürich" } }, n: 1.5 },
  "1 KiB ascii string": "x".repeat(1024),
  "Map of 10": new Map(Array.from({ length: 10 }, (_, i) => [`k${i}`, i])),
  "Uint8Array(64)": new Uint8Array(64),
};

function bench(fn, arg) {
  // Warm up, then time batches until ~200 ms have passed; report the best batch.
  for (let i = 0; i < 20000; i++) fn(arg);
  let best = Infinity;
  const deadline = performance.now() + 200;
  while (performance.now() < deadline) {
    const n = 20000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(arg);
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  return best;
}

const enc = new ValueEncoder();
const rows = [];
for (const [name, value] of Object.entries(cases)) {
  const bytes = serialize(value);
  const row = {
    case: name,
    bytes: bytes.length,
    "encode ns": bench((v) => enc.encode(v), value).toFixed(0),
    "serialize ns": bench(serialize, value).toFixed(0),
    "deserialize ns": bench(deserialize, bytes).toFixed(0),
  };
  if (v8) {
    row["v8 ser ns"] = bench((v) => {
      const s = new v8.Serializer();
      s.writeHeader();
      s.writeValue(v);
      return s.releaseBuffer();
    }, value).toFixed(0);
    row["v8 deser ns"] = bench((b) => {
      const d = new v8.Deserializer(b);
      d.readHeader();
      return d.readValue();
    }, bytes).toFixed(0);
  }
  rows.push(row);
}
console.log(isBun ? `bun ${process.versions.bun}` : `node ${process.version}`);
console.table(rows);
