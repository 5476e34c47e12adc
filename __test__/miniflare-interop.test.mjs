// On-disk interoperability with Cloudflare's own local runtime, in both directions: Miniflare
// 4 (the real workerd binary) writes a Durable Object's SQLite file and we read it, we write
// one and workerd reads it, and the V8-serialized `_cf_KV.value` bytes are identical.
// Errors stored at compatibility dates from 2026-04-21 match byte for byte when the Registry
// has the enhanced_error_serialization flag (open-do serve sets it from the project's date).
//
// Both sides run the same code (fixtures/miniflare/shared.mjs): writeAll() puts a rich set of
// values through storage.put, storage.put(entries), storage.kv.put and SQL; readAll() reads
// them back through list(), get(), get([...]), kv.list(), kv.get() and SQL, and reports each
// value as describeValue() of it, a canonical JSON form that is equal exactly when the values
// are deep-equal (types, prototypes, -0, NaN, holes, Map/Set order, views and their buffers,
// shared and circular references). The expected report is built in this process from the same
// builders, so a failure names the keys whose values differ.
//
// Runs unchanged under `node --test` (22, 24) and `bun test`; Miniflare runs in-process on all
// three. The folders follow Miniflare's layout: <persist>/<worker>-<Class>/<idHex>.sqlite.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { Miniflare } from "miniflare";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { isBun, tempDir } from "./helpers/objects.mjs";
import {
  CLASS_NAME,
  ID_NAMES,
  OBJECT_NAME,
  UNIQUE_KEY,
  WORKER_NAME,
  allEntries,
  buildErrorValues,
  describeValue,
  LONE_SURROGATE_KEY,
  readAll,
  readErrors,
  readLoneSurrogates,
  writeAll,
  writeErrors,
  writeLoneSurrogates,
} from "./fixtures/miniflare/shared.mjs";
import { deserialize } from "../dist/structured-clone.js";

/** One temporary root for the file (one exit hook); each test makes its own folders in it. */
const root = tempDir("miniflare-interop");
const scratch = (tag) => fs.mkdtempSync(path.join(root, `${tag}-`));

const WORKER = fileURLToPath(new URL("./fixtures/miniflare/worker.mjs", import.meta.url));
const TIMEOUT = { timeout: 120_000 };

/** Our class for Miniflare's "Store" namespace (same uniqueKey, so same ids and folder). */
class Store extends DurableObject {}

/**
 * The Worker's compatibility date. From 2026-04-21 on, workerd's `enhanced_error_serialization`
 * flag is on by default and changes how Errors are stored (see the error tests below); nothing
 * else in the value set depends on the date.
 */
const COMPAT_DATE = "2026-07-01";
/** The last date on which workerd stores Errors in V8's own format. */
const LEGACY_ERRORS_DATE = "2026-04-20";

function startMiniflare(persistDir, compatibilityDate = COMPAT_DATE) {
  return new Miniflare({
    name: WORKER_NAME,
    modules: true,
    scriptPath: WORKER,
    compatibilityDate,
    durableObjects: { STORE: { className: CLASS_NAME, useSQLite: true } },
    durableObjectsPersist: persistDir,
  });
}

/** Runs `fn(mf)` against a Miniflare on `persistDir`, always disposing it. */
async function withMiniflare(persistDir, fn, compatibilityDate) {
  const mf = startMiniflare(persistDir, compatibilityDate);
  try {
    return await fn(mf);
  } finally {
    await mf.dispose();
  }
}

async function fetchJson(mf, pathAndQuery) {
  const response = await mf.dispatchFetch(`http://interop.test${pathAndQuery}`);
  const text = await response.text();
  assert.equal(response.status, 200, `${pathAndQuery} failed in workerd:\n${text}`);
  return JSON.parse(text);
}

const objectQuery = `name=${encodeURIComponent(OBJECT_NAME)}`;

/**
 * Runs `fn(ctx, namespace)` inside OBJECT_NAME of Miniflare's namespace (same uniqueKey, so same
 * ids and folder) in a Registry on `dataDir`, then closes the registry (checkpointed, unlocked).
 */
async function inOurObject(dataDir, fn, compatibility) {
  const registry = new Registry({ dataDir, compatibility });
  try {
    const ns = registry.namespace(Store, { uniqueKey: UNIQUE_KEY });
    const stub = ns.getByName(OBJECT_NAME);
    return await runInDurableObject(stub, (_instance, ctx) => fn(ctx, ns));
  } finally {
    await registry.close();
  }
}

const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const utf8Order = (a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/** What readAll() must report for an object that ran writeAll(): built here, from the same builders. */
function expectedReport() {
  const entries = allEntries();
  const keys = entries.map(([key]) => key);
  const described = Object.fromEntries(entries.map(([key, value]) => [key, describeValue(value)]));
  const sorted = [...keys].sort(utf8Order);
  const inOrder = Object.fromEntries(sorted.map((key) => [key, described[key]]));
  return {
    listOrder: sorted,
    kvListOrder: sorted,
    list: inOrder,
    kvList: inOrder,
    get: described,
    kvGet: described,
    getBatch: Object.fromEntries(sorted.filter((key) => keys.indexOf(key) < 128).map((key) => [key, described[key]])),
    sql: expectedSql(),
  };
}

function expectedSql() {
  const d = describeValue;
  const bytes = (...b) => new Uint8Array(b).buffer;
  // [id, label, v, typeof(v)]: what SQLite stores for each bound or literal value (numbers bind as REAL).
  const vRows = [
    [1, "integer literal", 42, "integer"],
    [2, "integer min safe", -9007199254740991, "integer"],
    [3, "real bound", 3.5, "real"],
    [4, "integral real bound", 2, "real"],
    [5, "real literal", 1e300, "real"],
    [6, "negative real bound", -2.5e-300, "real"],
    [7, "text bound", "héllo 😀 ☃", "text"],
    [8, "empty text", "", "text"],
    [9, "blob bound Uint8Array", bytes(0, 1, 254, 255), "blob"],
    [10, "blob bound ArrayBuffer", bytes(7, 7, 7), "blob"],
    [11, "blob literal", bytes(0xde, 0xad, 0xbe, 0xef), "blob"],
    [12, "empty blob", bytes(), "blob"],
    [13, "null bound", null, "null"],
    [14, "boolean bound", "true", "text"],
  ];
  const rows = [
    ...vRows.map(([id, label, v, tv]) => ({
      id, label, i: null, ti: "null", r: null, tr: "null", t: null, tt: "null", b: null, tb: "null", v, tv,
    })),
    // Affinities: INTEGER turns 7.0 into 7, REAL keeps it, TEXT makes "7.0", BLOB (none) keeps REAL.
    { id: 15, label: "affinities", i: 7, ti: "integer", r: 7, tr: "real", t: "7.0", tt: "text", b: 7, tb: "real", v: null, tv: "null" },
    { id: 16, label: "typed columns", i: 8.25, ti: "real", r: 9, tr: "real", t: "ten", tt: "text", b: bytes(11), tb: "blob", v: null, tv: "null" },
  ];
  const columns = ["id", "label", "i", "ti", "r", "tr", "t", "tt", "b", "tb", "v", "tv"];
  return {
    columns,
    rows: rows.map((row) => d(row)),
    raw: rows.map((row) => d(columns.map((c) => row[c]))),
    schema: [
      {
        type: "table",
        name: "every_type",
        tbl_name: "every_type",
        sql: "CREATE TABLE every_type (id INTEGER PRIMARY KEY, label TEXT NOT NULL, i INTEGER, r REAL, t TEXT, b BLOB, v)",
      },
      { type: "index", name: "every_type_label", tbl_name: "every_type", sql: "CREATE INDEX every_type_label ON every_type (label)" },
    ],
  };
}

/**
 * Compares a readAll() report with the expected one, part by part and key by key, so that a
 * failure says which part (list, get, kvGet, ...) and which storage keys differ.
 */
function assertReport(actual, expected, who) {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${who}: report parts`);
  for (const part of ["listOrder", "kvListOrder"]) {
    assert.deepEqual(actual[part], expected[part], `${who}: ${part}`);
  }
  for (const part of ["list", "kvList", "get", "kvGet", "getBatch"]) {
    const a = actual[part];
    const e = expected[part];
    assert.deepEqual(Object.keys(a), Object.keys(e), `${who}: ${part} keys`);
    const differing = Object.keys(e).filter((key) => !isDeepStrictEqual(a[key], e[key]));
    if (differing.length > 0) {
      const pick = (o) => Object.fromEntries(differing.map((key) => [key, o[key]]));
      assert.deepEqual(pick(a), pick(e), `${who}: ${part}: values differ for keys ${JSON.stringify(differing)}`);
    }
  }
  for (const part of ["columns", "schema"]) assert.deepEqual(actual.sql[part], expected.sql[part], `${who}: SQL ${part}`);
  for (const part of ["rows", "raw"]) {
    const e = expected.sql[part];
    assert.equal(actual.sql[part].length, e.length, `${who}: SQL ${part} count`);
    e.forEach((row, i) => assert.deepEqual(actual.sql[part][i], row, `${who}: SQL ${part}, row ${i + 1}`));
  }
}

/** The object's file in Miniflare's layout. */
const objectFile = (dir, idHex) => path.join(dir, UNIQUE_KEY, `${idHex}.sqlite`);

/** Rows of _cf_KV, key → value bytes (hex), read with the runtime's own SQLite (WAL applied). */
async function rawKv(file) {
  assert.ok(fs.existsSync(file), `${file} exists`);
  const query = "SELECT hex(CAST(key AS BLOB)) AS keyHex, key, value FROM _cf_KV ORDER BY key";
  const schemaQuery = "SELECT sql FROM sqlite_master WHERE name = '_cf_KV'";
  let rows;
  let schema;
  if (isBun) {
    const { Database } = await import("bun:sqlite");
    const db = new Database(file);
    try {
      rows = db.query(query).all();
      schema = db.query(schemaQuery).get().sql;
    } finally {
      db.close();
    }
  } else {
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(file);
    try {
      rows = db.prepare(query).all();
      schema = db.prepare(schemaQuery).get().sql;
    } finally {
      db.close();
    }
  }
  return {
    schema,
    values: new Map(rows.map((row) => [row.key, Buffer.from(row.value).toString("hex")])),
    keyBytes: rows.map((row) => row.keyHex.toLowerCase()),
  };
}

// -----------------------------------------------------------------------------

test("Miniflare → open-do: workerd's file opens here, with every value, list order and SQL row", TIMEOUT, async () => {
  const dir = scratch("mf-to-open-do");
  const { ids, written } = await withMiniflare(dir, async (mf) => ({
    ids: await fetchJson(mf, "/ids"),
    written: await fetchJson(mf, `/write?${objectQuery}`),
  }));
  // Disposed: workerd is gone, and typically left its writes in the -wal file, which our
  // registry must apply when it opens the database.
  const expected = expectedReport();
  // The fixture itself: workerd reads back what it wrote as described here.
  assertReport(written.readBack, expected, "workerd reading its own writes");

  const ours = await inOurObject(dir, async (ctx, ns) => {
    for (const name of ID_NAMES) {
      assert.equal(ns.idFromName(name).toString(), ids[name], `idFromName(${JSON.stringify(name)})`);
    }
    assert.equal(ctx.id.toString(), written.id, "ctx.id");
    return readAll(ctx.storage);
  });
  assert.ok(fs.existsSync(objectFile(dir, written.id)), "workerd named the file <uniqueKey>/<idHex>.sqlite");
  assert.deepEqual(
    fs.readdirSync(path.join(dir, UNIQUE_KEY)).filter((f) => f.endsWith(".sqlite")).sort(),
    [`${written.id}.sqlite`, "metadata.sqlite"].sort(),
    "we opened workerd's file, not a new one",
  );
  assertReport(ours, expected, "open-do reading workerd's file");
});

test("open-do → Miniflare: our file opens in workerd, with every value, list order and SQL row", TIMEOUT, async () => {
  const dir = scratch("open-do-to-mf");
  const ourId = await inOurObject(dir, async (ctx) => {
    await writeAll(ctx.storage);
    return ctx.id.toString();
  });
  assert.ok(fs.existsSync(objectFile(dir, ourId)), "our file is at <uniqueKey>/<idHex>.sqlite");
  const expected = expectedReport();

  const { read } = await withMiniflare(dir, async (mf) => {
    const result = await fetchJson(mf, `/read?${objectQuery}`);
    assert.equal(result.id, ourId, "workerd derives the same id");
    // workerd also writes to our file; we must read that back below.
    await fetchJson(mf, `/append?${objectQuery}`);
    return result;
  });
  assertReport(read, expected, "workerd reading open-do's file");
  assert.deepEqual(
    fs.readdirSync(path.join(dir, UNIQUE_KEY)).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite"),
    [`${ourId}.sqlite`],
    "workerd opened our file, not a new one",
  );

  // And back: our registry reads the file after workerd wrote to it.
  const after = await inOurObject(dir, async (ctx) => ({
    appended: describeValue(await ctx.storage.get("appended/by-workerd")),
    row: ctx.storage.sql.exec("SELECT label, v, typeof(v) AS t FROM every_type WHERE id = 100").toArray(),
    report: await readAll(ctx.storage),
  }));
  assert.deepEqual(after.appended, describeValue(new Map([["at", new Date(0)]])), "value workerd added");
  assert.deepEqual(after.row, [{ label: "appended by workerd", v: "ok", t: "text" }], "row workerd added");
  assert.equal(after.report.listOrder.length, expected.listOrder.length + 1);
  assert.deepEqual(after.report.get, expected.get, "our values are unchanged after workerd opened the file");
});

/**
 * Values whose bytes may differ though both sides read them as equal values (tests 1 and 2
 * prove that): V8 keeps a RegExp's escaped source in the string representation of the
 * pattern it was built from, so `new RegExp("\u2028")` stores a two-byte source string while
 * `/\u2028/` stores a one-byte one; both have the same `.source` and nothing in JavaScript tells
 * them apart, so we write the one-byte form.
 */
const REPRESENTATION_ONLY = new Set(["regexp/escapes"]);

test("_cf_KV.value bytes written by workerd and by open-do are identical", TIMEOUT, async () => {
  const mfDir = scratch("bytes-mf");
  const ourDir = scratch("bytes-open-do");
  const { id } = await withMiniflare(mfDir, (mf) => fetchJson(mf, `/write?${objectQuery}`));
  const ourId = await inOurObject(ourDir, async (ctx) => {
    await writeAll(ctx.storage);
    return ctx.id.toString();
  });
  assert.equal(ourId, id);
  // Both sides are closed: Miniflare disposed (it may leave a -wal, which opening applies), our registry closed.
  const theirs = await rawKv(objectFile(mfDir, id));
  const ours = await rawKv(objectFile(ourDir, ourId));
  // workerd's CREATE TABLE text is indented over several lines, ours is one line: same table.
  const normalize = (sql) => sql.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")");
  assert.equal(normalize(ours.schema), normalize(theirs.schema), "_cf_KV schema");
  assert.equal(normalize(theirs.schema), "CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID");
  assert.deepEqual([...ours.values.keys()], [...theirs.values.keys()], "the same keys, in the same (byte) order");
  assert.equal(theirs.values.size, allEntries().length);
  const differing = [...theirs.values.keys()].filter((key) => !REPRESENTATION_ONLY.has(key) && ours.values.get(key) !== theirs.values.get(key));
  const show = (m) => Object.fromEntries(differing.map((key) => [key, m.get(key)]));
  assert.deepEqual(show(ours.values), show(theirs.values), `value bytes differ for keys ${JSON.stringify(differing)}`);
  for (const key of REPRESENTATION_ONLY) {
    assert.deepEqual(describeValue(deserialize(unhex(ours.values.get(key)))), describeValue(deserialize(unhex(theirs.values.get(key)))), key);
  }

  // A few spelled out, as workerd wrote them.
  const spot = {
    "num/neg-zero": "ff0f4e0000000000000080",
    "num/smi-max": "ff0f49feffffff07",
    "num/smi-max+1": "ff0f4e000000000000d041",
    "num/nan": "ff0f4e000000000000f87f",
    "str/latin1": "ff0f220d68e96c6c6f2077f6726c6420ff",
    "str/astral": "ff0f63103dd800de200034d81edd200041d80edf",
    "bigint/negative": "ff0f5a110100000000000000",
    "view/uint8": "ff0f420500017f80ff5642000500",
    "arr/holey": "ff0f61034900490249044906400203",
    "kv/neg-zero": "ff0f4e0000000000000080",
  };
  for (const [key, bytes] of Object.entries(spot)) {
    assert.equal(theirs.values.get(key), bytes, `workerd's bytes for ${key}`);
    assert.equal(ours.values.get(key), bytes, `our bytes for ${key}`);
  }
});

// -----------------------------------------------------------------------------
// Errors. workerd stores an Error in one of two formats, chosen by the Worker's compatibility
// date: before 2026-04-21, V8's own (kError, 'r': name, message, stack, cause); from then on
// (`enhanced_error_serialization`), as a host object (0x5c, tag 10, then an error-type tag,
// the message and a plain object of the error's other own properties: stack, cause and any
// custom ones), which reads back with those properties as own enumerable data properties.

test("Errors in V8's format (compat date before 2026-04-21): identical bytes, read in both directions", TIMEOUT, async () => {
  const mfDir = scratch("errors-legacy-mf");
  const ourDir = scratch("errors-legacy-open-do");
  const keys = buildErrorValues().map(([key]) => key);
  const expected = Object.fromEntries(buildErrorValues().map(([key, value]) => [key, describeValue(value)]));
  const written = await withMiniflare(mfDir, (mf) => fetchJson(mf, `/write-errors?${objectQuery}`), LEGACY_ERRORS_DATE);
  assert.deepEqual(written.readBack.get, expected, "workerd reading its own errors");

  const oursFromWorkerd = await inOurObject(mfDir, (ctx) => readErrors(ctx.storage));
  assert.deepEqual(oursFromWorkerd.get, expected, "open-do reading workerd's errors");

  await inOurObject(ourDir, (ctx) => writeErrors(ctx.storage));
  const workerdFromUs = await withMiniflare(ourDir, (mf) => fetchJson(mf, `/read-errors?${objectQuery}`), LEGACY_ERRORS_DATE);
  assert.deepEqual(workerdFromUs.read.get, expected, "workerd reading open-do's errors");

  const theirs = await rawKv(objectFile(mfDir, written.id));
  const ours = await rawKv(objectFile(ourDir, written.id));
  assert.deepEqual([...theirs.values.keys()], [...keys].sort(utf8Order));
  assert.deepEqual(Object.fromEntries(ours.values), Object.fromEntries(theirs.values), "error bytes");
  assert.equal(theirs.values.get("error/range-no-message"), "ff0f725273220a52616e67654572726f722e");
});

test("Errors in workerd's enhanced format (compat date from 2026-04-21) written by workerd read here", TIMEOUT, async () => {
  const dir = scratch("errors-enhanced-mf");
  const options = { custom: true };
  const written = await withMiniflare(dir, (mf) => fetchJson(mf, `/write-errors?${objectQuery}&custom=1`));
  const theirs = await rawKv(objectFile(dir, written.id));
  assert.equal(theirs.values.get("error/range-no-message"), "ff0f5c0a0322006f2205737461636b220a52616e67654572726f727b01", "workerd wrote the enhanced format");
  // What workerd itself reads back (own enumerable stack, cause and custom properties) is what we must read.
  const ours = await inOurObject(dir, (ctx) => readErrors(ctx.storage, options));
  assert.deepEqual(ours.get, written.readBack.get, "open-do reading workerd's errors");
  // And the opt-in enhanced writer produces workerd's bytes for the same values.
  const { ValueEncoder } = await import("../dist/structured-clone.js");
  const encoder = new ValueEncoder({ errors: "workerd" });
  const values = buildErrorValues(options);
  const ourBytes = Object.fromEntries(values.map(([key, value]) => [key, Buffer.from(encoder.encode(value)).toString("hex")]));
  assert.deepEqual(ourBytes, Object.fromEntries(values.map(([key]) => [key, theirs.values.get(key)])), "enhanced encoder bytes");
});

test("Errors written by open-do read in workerd at the current compat date", TIMEOUT, async () => {
  // workerd reads V8's format at any date, so our errors keep their type, message, stack and
  // cause. (At this date workerd itself would write the enhanced format, whose errors read back
  // with enumerable own `stack` and `cause` and keep custom properties; ours do not.)
  const dir = scratch("errors-open-do-to-mf");
  await inOurObject(dir, (ctx) => writeErrors(ctx.storage));
  const expected = Object.fromEntries(buildErrorValues().map(([key, value]) => [key, describeValue(value)]));
  const { read } = await withMiniflare(dir, (mf) => fetchJson(mf, `/read-errors?${objectQuery}`));
  assert.deepEqual(read.get, expected, "workerd reading open-do's errors");
});

test("Errors written by open-do are stored as workerd stores them at the current compat date (enhanced_error_serialization)", TIMEOUT, async () => {
  const mfDir = scratch("errors-enhanced-bytes-mf");
  const ourDir = scratch("errors-enhanced-bytes-open-do");
  const { id } = await withMiniflare(mfDir, (mf) => fetchJson(mf, `/write-errors?${objectQuery}`));
  // As open-do serve sets it for a project dated after 2026-04-21.
  await inOurObject(ourDir, (ctx) => writeErrors(ctx.storage), { enhanced_error_serialization: true });
  const theirs = await rawKv(objectFile(mfDir, id));
  const ours = await rawKv(objectFile(ourDir, id));
  assert.deepEqual(Object.fromEntries(ours.values), Object.fromEntries(theirs.values), "error bytes");
});

// -----------------------------------------------------------------------------
// Strings that are not valid UTF-16. Inside values (V8 format) they round-trip (str/lone-surrogate
// above); as keys and SQL text they become UTF-8 text in SQLite, and there workerd writes a lone
// surrogate as its generalized UTF-8 bytes (U+D800 -> ED A0 80, "WTF-8"), and so do we, so
// the same key names the same row on both sides.

test("Lone surrogates in keys and SQL text are stored as workerd stores them", TIMEOUT, async () => {
  const mfDir = scratch("lone-surrogates-mf");
  const ourDir = scratch("lone-surrogates-open-do");
  const written = await withMiniflare(mfDir, (mf) => fetchJson(mf, `/write-lone-surrogates?${objectQuery}`));
  assert.deepEqual(
    written.readBack,
    {
      get: "value",
      sqlHex: "61EDA08062",
      // In stored (byte) order; every lone surrogate reads back as three U+FFFD, one per byte.
      kvList: [
        ["6c 6f 6e 65 2d fffd fffd fffd", "value"],
        ["78 fffd fffd fffd 79", 3],
        ["78 fffd 79", 4],
        ["fffd fffd fffd", 0],
        ["fffd fffd fffd", 1],
        ["fffd", 2],
      ],
      lookAlikes: [0, 1, 2, 3, 4],
    },
    "workerd reading its own writes",
  );
  const keyBytes = [Buffer.from("lone-").toString("hex") + "eda080", "78eda08079", "78efbfbd79", "eda080", "edb080", "efbfbd"];
  assert.deepEqual((await rawKv(objectFile(mfDir, written.id))).keyBytes, keyBytes);

  await inOurObject(ourDir, (ctx) => writeLoneSurrogates(ctx.storage));
  assert.deepEqual((await rawKv(objectFile(ourDir, written.id))).keyBytes, keyBytes, "our key bytes");
  const workerdFromUs = await withMiniflare(ourDir, (mf) => fetchJson(mf, `/read-lone-surrogates?${objectQuery}`));
  assert.deepEqual(workerdFromUs.read, written.readBack, "workerd reading open-do's key and text");
  const oursFromWorkerd = await inOurObject(mfDir, (ctx) => readLoneSurrogates(ctx.storage));
  assert.deepEqual(oursFromWorkerd, written.readBack, `open-do reading workerd's ${JSON.stringify(LONE_SURROGATE_KEY)}`);
});
