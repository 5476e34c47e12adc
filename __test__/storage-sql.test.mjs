// ctx.storage.sql: exec and its cursor, Cloudflare's value mapping and restrictions
// (reference §1.9, §2.11).
import { test } from "node:test";
import assert from "node:assert/strict";
import { inObject } from "./helpers/objects.mjs";

const TXN_MESSAGE =
  /^To execute a transaction, please use the state\.storage\.transaction\(\) or state\.storage\.transactionSync\(\) APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements/;

test("exec returns a cursor: next, iteration, toArray, columnNames", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
    for (const [id, name] of [[1, "a"], [2, "b"], [3, "c"]]) sql.exec("INSERT INTO t VALUES (?, ?)", id, name);
    const c = sql.exec("SELECT id, name FROM t ORDER BY id");
    assert.deepEqual(c.columnNames, ["id", "name"]);
    assert.deepEqual(c.next(), { done: false, value: { id: 1, name: "a" } });
    assert.deepEqual([...c], [{ id: 2, name: "b" }, { id: 3, name: "c" }]);
    assert.deepEqual(c.next(), { done: true, value: undefined });
    assert.deepEqual(sql.exec("SELECT name FROM t WHERE id > ?", 1).toArray(), [{ name: "b" }, { name: "c" }]);
  });
});

test("exec runs eagerly: a write happens even if the cursor is never read", async () => {
  await inObject((storage) => {
    storage.sql.exec("CREATE TABLE t (x)");
    storage.sql.exec("INSERT INTO t VALUES (1) RETURNING x");
    assert.equal(storage.sql.exec("SELECT count(*) AS n FROM t").one().n, 1);
  });
});

test("one() demands exactly one row", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (x)");
    assert.throws(() => sql.exec("SELECT * FROM t").one(), {
      message: "Expected exactly one result from SQL query, but got no results.",
    });
    sql.exec("INSERT INTO t VALUES (1), (2)");
    assert.throws(() => sql.exec("SELECT * FROM t").one(), {
      message: "Expected exactly one result from SQL query, but got multiple results.",
    });
    assert.deepEqual(sql.exec("SELECT max(x) AS m FROM t").one(), { m: 2 });
  });
});

test("raw() yields arrays and shares its position with next()", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (a, b)");
    sql.exec("INSERT INTO t VALUES (1, 2), (3, 4), (5, 6)");
    const c = sql.exec("SELECT a, b, a AS b FROM t ORDER BY a");
    assert.deepEqual(c.next().value, { a: 1, b: 1 }); // duplicate column: the later one wins
    assert.deepEqual(c.raw().next().value, [3, 4, 3]);
    assert.deepEqual([...c.raw()], [[5, 6, 5]]);
  });
});

test("rowsRead and rowsWritten count the work of the statement", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (x)");
    const insert = sql.exec("INSERT INTO t VALUES (1), (2), (3)");
    assert.equal(insert.rowsWritten, 3);
    // The figures workerd reports for the same statements.
    const select = sql.exec("SELECT * FROM t");
    select.toArray();
    assert.equal(select.rowsRead, 3);
    assert.equal(select.rowsWritten, 0);
    const filtered = sql.exec("SELECT * FROM t WHERE x = 2");
    assert.deepEqual(filtered.toArray(), [{ x: 2 }]);
    assert.equal(filtered.rowsRead, 3);
    const update = sql.exec("UPDATE t SET x = x + 1 WHERE x > 1");
    assert.equal(update.rowsWritten, 2);
    assert.equal(update.rowsRead, 3);
  });
});

test("value mapping: numbers bind as REAL, booleans as text, blobs come back as ArrayBuffer", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    const one = (q, ...b) => sql.exec(q, ...b).one();
    assert.deepEqual(one("SELECT typeof(?) AS t", 5), { t: "real" });
    assert.deepEqual(one("SELECT ? AS v, typeof(?) AS t", true, false), { v: "true", t: "text" });
    assert.deepEqual(one("SELECT typeof(?) AS a, typeof(?) AS b", null, undefined), { a: "null", b: "null" });
    const blob = one("SELECT ? AS b", new Uint8Array([1, 2, 3])).b;
    assert.ok(blob instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(blob)], [1, 2, 3]);
    assert.deepEqual(one("SELECT typeof(?) AS t", new Uint8Array([9]).buffer), { t: "blob" });
    assert.deepEqual(one("SELECT 7 AS i, 1.5 AS r, 'x' AS s, NULL AS n"), { i: 7, r: 1.5, s: "x", n: null });
    assert.deepEqual(one("SELECT ? AS s", "h\u00e9llo \u{1F600}"), { s: "h\u00e9llo \u{1F600}" });
    assert.throws(() => sql.exec("SELECT ?", 1n), { name: "TypeError", message: "Cannot convert a BigInt value to a number" });
  });
});

test("the number of bindings must match the placeholders", async () => {
  await inObject((storage) => {
    assert.throws(() => storage.sql.exec("SELECT ?, ?", 1), { message: "Wrong number of parameter bindings for SQL query." });
    assert.throws(() => storage.sql.exec("SELECT 1", 1), { message: "Wrong number of parameter bindings for SQL query." });
  });
});

test("multiple statements: all run, the cursor reads the last, only the last may have parameters", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    const c = sql.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); SELECT sum(x) AS s FROM t WHERE x > ?", 0);
    assert.deepEqual(c.toArray(), [{ s: 3 }]);
    assert.deepEqual(c.columnNames, ["s"]);
    assert.throws(() => sql.exec("INSERT INTO t VALUES (?); SELECT 1", 5), {
      message: "When executing multiple SQL statements in a single call, only the last statement can have parameters.",
    });
    // as in workerd, a statement is the last only when nothing but whitespace follows it
    assert.deepEqual(sql.exec("SELECT 1 AS one;  \n").toArray(), [{ one: 1 }]);
    for (const q of ["", ";", "SELECT 1; -- done", "SELECT 1;;"]) {
      assert.throws(() => sql.exec(q), { message: "SQL code did not contain a statement." }, JSON.stringify(q));
    }
  });
});

test("SQL errors carry SQLite's message and code", async () => {
  await inObject((storage) => {
    assert.throws(() => storage.sql.exec("SELEC 1"), { message: 'near "SELEC": syntax error at offset 0: SQLITE_ERROR' });
    assert.throws(() => storage.sql.exec("SELECT * FROM missing"), { message: /^no such table: missing( at offset \d+)?: SQLITE_ERROR$/ });
    assert.equal(storage.sql.exec("SELECT round(sqrt(16)) AS r").one().r, 4); // math functions are built in
    storage.sql.exec("CREATE TABLE u (id PRIMARY KEY)");
    storage.sql.exec("INSERT INTO u VALUES (1)");
    assert.throws(() => storage.sql.exec("INSERT INTO u VALUES (1)"), { message: /UNIQUE constraint failed: u\.id: SQLITE_CONSTRAINT/ });
  });
});

test("BEGIN, COMMIT, ROLLBACK and SAVEPOINT are rejected with Cloudflare's guidance", async () => {
  await inObject((storage) => {
    for (const q of ["BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT s", "RELEASE s"]) {
      assert.throws(() => storage.sql.exec(q), { message: TXN_MESSAGE }, q);
    }
  });
});

test("_cf_ names are reserved: not created, read, written or renamed into", async () => {
  await inObject(async (storage) => {
    await storage.put("secret", 1);
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (x)");
    for (const q of [
      "CREATE TABLE _cf_mine (x)",
      "CREATE TABLE _CF_Mine (x)",
      "SELECT * FROM _cf_KV",
      "INSERT INTO _cf_KV VALUES ('k', 'v')",
      "DELETE FROM _cf_KV",
      "DROP TABLE _cf_KV",
      "ALTER TABLE t RENAME TO _cf_t",
      "CREATE INDEX _cf_i ON t (x)",
    ]) {
      assert.throws(() => sql.exec(q), { message: /not authorized: SQLITE_AUTH|SQLITE_AUTH/ }, q);
    }
    assert.equal(await storage.get("secret"), 1);
    // the tables still show in the schema listing
    const names = sql.exec("PRAGMA table_list").toArray().map((r) => r.name);
    assert.ok(names.includes("_cf_KV"), names.join(","));
  });
});

test("PRAGMA allowlist: user_version is not allowed, foreign_keys and table_info are", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (x INTEGER)");
    assert.throws(() => sql.exec("PRAGMA user_version"), { message: /SQLITE_AUTH/ });
    assert.throws(() => sql.exec("PRAGMA journal_mode = DELETE"), { message: /SQLITE_AUTH/ });
    assert.throws(() => sql.exec("PRAGMA table_info(_cf_KV)"), { message: /SQLITE_AUTH/ });
    sql.exec("PRAGMA foreign_keys = ON");
    assert.deepEqual(sql.exec("PRAGMA table_info(t)").toArray().map((r) => r.name), ["x"]);
  });
});

test("ATTACH and TEMP objects are denied; views, indexes, triggers and FTS5 are allowed", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    assert.throws(() => sql.exec("ATTACH DATABASE ':memory:' AS other"), { message: /SQLITE_AUTH/ });
    assert.throws(() => sql.exec("CREATE TEMP TABLE tt (x)"), { message: /SQLITE_AUTH/ });
    sql.exec("CREATE TABLE t (x)");
    sql.exec("CREATE VIEW v AS SELECT x FROM t");
    sql.exec("CREATE INDEX i ON t (x)");
    sql.exec("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END");
    sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)");
    sql.exec("INSERT INTO docs VALUES ('hello durable objects')");
    assert.equal(sql.exec("SELECT count(*) AS n FROM docs WHERE docs MATCH 'durable'").one().n, 1);
  });
});

test("more than 100 bound parameters is an error", async () => {
  await inObject((storage) => {
    const q = `SELECT ${Array(101).fill("?").join(",")}`;
    assert.throws(() => storage.sql.exec(q, ...Array(101).fill(1)), { message: /too many SQL variables/ });
    const ok = `SELECT ${Array(100).fill("?").join(",")}`;
    assert.equal(storage.sql.exec(ok, ...Array(100).fill(1)).raw().next().value.length, 100);
  });
});

test("databaseSize is the used pages times the page size", async () => {
  await inObject((storage) => {
    const before = storage.sql.databaseSize;
    storage.sql.exec("CREATE TABLE t (x)");
    storage.sql.exec("INSERT INTO t VALUES (?)", "x".repeat(100_000));
    const after = storage.sql.databaseSize;
    assert.equal(after % 4096, 0);
    assert.ok(after > before + 90_000, `${before} -> ${after}`);
  });
});

test("re-running a statement while its cursor is open gives an independent cursor", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (x)");
    sql.exec("INSERT INTO t VALUES (1), (2), (3)");
    const a = sql.exec("SELECT x FROM t ORDER BY x");
    assert.equal(a.next().value.x, 1);
    const b = sql.exec("SELECT x FROM t ORDER BY x");
    assert.deepEqual(b.toArray().map((r) => r.x), [1, 2, 3]);
    assert.deepEqual(a.toArray().map((r) => r.x), [2, 3]);
  });
});

test("large results come back whole", async () => {
  await inObject((storage) => {
    const sql = storage.sql;
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    storage.transactionSync(() => {
      for (let i = 0; i < 5000; i++) sql.exec("INSERT INTO t (v) VALUES (?)", `row-${i}-${"x".repeat(50)}`);
    });
    const rows = sql.exec("SELECT * FROM t ORDER BY id").toArray();
    assert.equal(rows.length, 5000);
    assert.equal(rows[4999].v, `row-4999-${"x".repeat(50)}`);
    const big = sql.exec("SELECT ? AS b", new Uint8Array(1_000_000)).one().b;
    assert.equal(big.byteLength, 1_000_000);
  });
});

// Storage runs on the JavaScript thread: a query that never ends froze every object, the
// Worker and every timer of the process for good. The child runs such queries under a
// 300 ms sqlTimeLimit; a runtime without the limit never answers, and is killed.
test("a runaway query is interrupted at the time limit with a clear error; the process and the object go on", { timeout: 90_000 }, async () => {
  const { spawn } = await import("node:child_process");
  const { tempDir } = await import("./helpers/objects.mjs");
  const child = spawn(process.execPath, [new URL("./fixtures/runaway-sql.mjs", import.meta.url).pathname, tempDir()], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const how = await new Promise((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code)));
  clearTimeout(killer);
  assert.equal(how, 0, `the child ${how === "SIGKILL" ? "froze and was killed" : `exited with ${how}`}`);
  const report = JSON.parse(out);
  assert.match(report.countEndless.error, /SQL statement interrupted: it ran longer than the time limit of 300 ms .*sqlTimeLimit.*: SQLITE_INTERRUPT/);
  assert.deepEqual(report.sameObjectAfter, { value: "pong" });
  assert.deepEqual(report.otherObject, { value: "pong" });
  assert.equal(report.timersRan, true);
  // An endless INSERT interrupted mid-turn: SQLite rolls back the whole transaction, so the
  // turn's earlier put is gone too. The caller must not see success: the object resets,
  // and nothing of the turn is stored.
  assert.match(report.insertEndless.error ?? "", /rolled back this turn's transaction/);
  assert.deepEqual(report.afterInsert, { value: { before: null, rows: 0 } });
  // Inside transactionSync() the code sees the time limit's error (closing the savepoint
  // SQLite had already rolled back said "no transaction is open"), and the turn is reset.
  assert.match(report.caughtInTransaction ?? "", /SQL statement interrupted: it ran longer than the time limit/);
  assert.match(report.inTransactionSync.error ?? "", /rolled back this turn's transaction/);
  // On an object without a file, the cursor of an endless query reads lazily too.
  assert.deepEqual(report.firstRows, { value: [1, 2, 3, 4, 5] });
  assert.equal(report.filelessFileCreated, false);
});

test("sqlTimeLimit must be a positive integer", async () => {
  const { Registry } = await import("../index.js");
  assert.throws(() => new Registry({ dataDir: ":memory:", sqlTimeLimit: 0 }), { name: "TypeError", message: /sqlTimeLimit/ });
});

test("a pragma set by an object without a file stays its own: it does not leak into other objects' reads", async () => {
  const { Registry } = await import("../index.js");
  const { Plain, tempDir } = await import("./helpers/objects.mjs");
  const { runInDurableObject } = await import("../index.js");
  const registry = new Registry({ dataDir: tempDir() });
  const read = (name) => runInDurableObject(registry.namespace(Plain).getByName(name), (_, ctx) => ctx.storage.sql.exec("PRAGMA foreign_keys").one().foreign_keys);
  const before = await read("b");
  await runInDurableObject(registry.namespace(Plain).getByName("a"), (_, ctx) => {
    ctx.storage.sql.exec(`PRAGMA foreign_keys = ${before ? "OFF" : "ON"}`);
    assert.equal(ctx.storage.sql.exec("PRAGMA foreign_keys").one().foreign_keys, before ? 0 : 1);
  });
  assert.equal(await read("b"), before);
  await registry.close();
});
