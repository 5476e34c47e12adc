// Files, write coalescing, the output gate and durability (reference §2.3, §2.4).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { inObject, Plain, runFixtureUnderFdLimit, tempDir } from "./helpers/objects.mjs";
import { native } from "../dist/native.js";

const fixture = (name) => path.join(import.meta.dirname, "fixtures", name);

test("files follow workerd's layout and appear only on the first write", async () => {
  const dataDir = tempDir();
  const registry = new Registry({ dataDir });
  const ns = registry.namespace(Plain, { uniqueKey: "app-Plain" });
  const stub = ns.getByName("x");
  const file = path.join(dataDir, "app-Plain", `${stub.id}.sqlite`);
  await runInDurableObject(stub, async (_, ctx) => {
    assert.equal(await ctx.storage.get("k"), undefined);
    assert.deepEqual([...(await ctx.storage.list())], []);
    assert.equal(ctx.storage.kv.get("k"), undefined);
    const sql = ctx.storage.sql;
    assert.deepEqual(sql.exec("SELECT 1 AS one").toArray(), [{ one: 1 }]);
    assert.deepEqual(sql.exec("SELECT name FROM sqlite_master").toArray(), []);
    assert.throws(() => sql.exec("SELECT * FROM t"), { message: /no such table: t/ });
    assert.equal(sql.databaseSize, 0);
  });
  assert.equal(fs.existsSync(file), false, "a read created the file");
  // The first statement that writes creates the file, and everything runs there.
  await runInDurableObject(stub, (_, ctx) => {
    const sql = ctx.storage.sql;
    assert.deepEqual(sql.exec("CREATE TABLE t (x); INSERT INTO t VALUES (7); SELECT x FROM t").toArray(), [{ x: 7 }]);
    assert.deepEqual(sql.exec("SELECT x FROM t").toArray(), [{ x: 7 }]);
  });
  assert.equal(fs.existsSync(file), true);
  await runInDurableObject(stub, (_, ctx) => ctx.storage.put("k", 1));
  await registry.close();
  const again = new Registry({ dataDir });
  const value = await runInDurableObject(again.namespace(Plain, { uniqueKey: "app-Plain" }).getByName("x"), (_, ctx) =>
    ctx.storage.get("k"),
  );
  assert.equal(value, 1);
  await again.close();
});

test("a namespace key that would leave dataDir is refused", () => {
  const registry = new Registry({ dataDir: tempDir() });
  for (const uniqueKey of ["..", "../up", "a/b", "a\\b", "", "x\0y"]) {
    assert.throws(() => registry.namespace(Plain, { uniqueKey }), { name: "TypeError" }, JSON.stringify(uniqueKey));
  }
});

test("writes of one turn commit together; a later turn sees them", async () => {
  await inObject(async (storage) => {
    for (let i = 0; i < 10_000; i++) await storage.put(`k${i}`, i);
    assert.equal((await storage.list()).size, 10_000);
  });
});

test("at full durability a busy object's WAL stays small: it is checkpointed and reused every 100 pages", async () => {
  const dataDir = tempDir();
  const registry = new Registry({ dataDir });
  const stub = registry.namespace(Plain, { uniqueKey: "app-Plain" }).getByName("busy");
  // 400 commits of one page each: SQLite's default (1,000 pages) would let the WAL grow
  // to 400 frames (1.6 MiB); every commit would then fsync a longer file.
  for (let i = 0; i < 400; i++) await runInDurableObject(stub, (_, ctx) => ctx.storage.put("count", i));
  const wal = path.join(dataDir, "app-Plain", `${stub.id}.sqlite-wal`);
  const frames = (fs.statSync(wal).size - 32) / (4096 + 24);
  assert.ok(frames <= 110, `the WAL holds ${frames} frames`);
  assert.equal(await runInDurableObject(stub, (_, ctx) => ctx.storage.get("count")), 399);
  await registry.close();
  const again = new Registry({ dataDir });
  assert.equal(await runInDurableObject(again.namespace(Plain, { uniqueKey: "app-Plain" }).getByName("busy"), (_, ctx) => ctx.storage.get("count")), 399);
  await again.close();
});

/** Runs fixtures/cursor-across-io.mjs in `mode` under `ulimit -n 256` (48 open databases at most). */
const cursorFixture = (mode) => runFixtureUnderFdLimit("cursor-across-io.mjs", [tempDir(), mode]);

test("a cursor read across other I/O keeps its rows while other objects' files take the descriptor budget", { timeout: 120_000 }, () => {
  // The reader's file was closed to make room while its cursor was open, and the cursor
  // ended after 1 of 100 rows, without an error.
  assert.deepEqual(cursorFixture("across"), { rows: 100 });
});

test("cursors dropped unread, or left by a reset, do not hold files open without bound", { timeout: 120_000 }, () => {
  // 200 objects each read one row and drop the cursor (a third of them reset with it open);
  // had those cursors pinned their files, the process would run out of descriptors.
  assert.deepEqual(cursorFixture("peek"), { worked: 200 });
});

test("a cursor whose file had to be closed fails with an error that says why, never ends early in silence", { timeout: 120_000 }, () => {
  // 60 objects keep a cursor each, 48 files fit: the least recently used have to go.
  const { ends } = cursorFixture("hold");
  const cut = Object.keys(ends).filter((end) => end !== "100 rows");
  assert.equal(cut.length, 1, JSON.stringify(ends));
  assert.match(cut[0], /^This SQL cursor was closed before its end: too many Durable Object database files were open .*ulimit -n/);
  assert.equal(ends["100 rows"] + ends[cut[0]], 60);
});

test("touching 5,000 objects works under a file-descriptor limit of 256", { timeout: 300_000 }, () => {
  const dataDir = tempDir();
  const report = runFixtureUnderFdLimit("many-objects.mjs", [dataDir, "5000"]);
  assert.equal(report.objects, 5000);
  assert.equal(report.readBack, 5000);
  assert.ok(report.openFiles <= report.fdLimit, JSON.stringify(report));
  assert.equal(fs.readdirSync(path.join(dataDir, "Counter")).filter((f) => f.endsWith(".sqlite")).length, 5000);
});

test("a burst of writes to more objects than the process may hold files open: every one acknowledged and on disk", { timeout: 120_000 }, () => {
  // 400 objects write at once under 256 descriptors (a budget of 48 open files), each
  // fsync held up 20 ms: a file whose commit waits for its fsync is closed to make room,
  // and the fsync still covers the commit.
  const report = runFixtureUnderFdLimit("burst-writes.mjs", [tempDir(), "400"], { OPEN_DO_TEST_FSYNC_DELAY_MS: "20" });
  assert.deepEqual(report, { acknowledged: 400, readBack: 400, failures: [] });
});

test("objects that stop using storage give up their files and stay loaded; their next call reopens them", async () => {
  let constructed = 0;
  class Rows extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t(x)");
    }
    add(x) {
      this.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", x);
    }
    sum() {
      return this.ctx.storage.sql.exec("SELECT sum(x) AS s FROM t").one().s;
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const ns = registry.namespace(Rows);
  const stubs = Array.from({ length: 20 }, (_, i) => ns.getByName(`r${i}`));
  for (const [i, stub] of stubs.entries()) await stub.add(i);
  // One object reads a cursor across the closing: its file stays open until it is read.
  const reader = ns.getByName("reader");
  for (let i = 0; i < 10; i++) await reader.add(i);
  const rest = await runInDurableObject(reader, (_, ctx) => {
    const cursor = ctx.storage.sql.exec("SELECT x FROM t ORDER BY x");
    cursor.next();
    return cursor;
  });
  // Idle time passes in epochs: the first call begins one in which everything above was
  // used; five objects are used in it; the next call closes what was not.
  native.storageCloseIdleFiles(0);
  for (const stub of stubs.slice(0, 5)) await stub.add(100);
  const open = native.storageOpenFiles();
  assert.equal(native.storageCloseIdleFiles(0), 15, "the 15 objects not used for a whole epoch");
  assert.equal(native.storageOpenFiles(), open - 15);
  assert.deepEqual([...rest].map((row) => row.x), [1, 2, 3, 4, 5, 6, 7, 8, 9], "the cursor read on");
  // Every object answers from its data, without being constructed again.
  const sums = await Promise.all(stubs.map((stub) => stub.sum()));
  assert.deepEqual(sums, stubs.map((_, i) => (i < 5 ? i + 100 : i)));
  assert.equal(constructed, 21);
  await registry.close();
});

test("pragmas an object set on its connection hold after its file was closed and reopened", async () => {
  class Family extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      ctx.storage.sql.exec("PRAGMA foreign_keys = ON");
      ctx.storage.sql.exec("PRAGMA case_sensitive_like = ON");
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS parent(id INTEGER PRIMARY KEY)");
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS child(parent INTEGER REFERENCES parent(id) ON DELETE CASCADE)");
    }
    seed() {
      this.ctx.storage.sql.exec("INSERT INTO parent VALUES (1)");
      this.ctx.storage.sql.exec("INSERT INTO child VALUES (1), (1)");
    }
    dropParent() {
      this.ctx.storage.sql.exec("DELETE FROM parent WHERE id = 1");
      return this.ctx.storage.sql.exec("SELECT count(*) AS n FROM child").one().n;
    }
    likes() {
      return this.ctx.storage.sql.exec("SELECT 'abc' LIKE 'ABC' AS hit").one().hit;
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = registry.namespace(Family).getByName("f");
  await stub.seed();
  // The object goes idle: its file closes (the sweep's call, twice); it stays loaded.
  native.storageCloseIdleFiles(0);
  native.storageCloseIdleFiles(0);
  assert.equal(await stub.likes(), 0, "case_sensitive_like still on");
  assert.equal(await stub.dropParent(), 0, "foreign_keys still on: the children went with their parent");
  await registry.close();
});

for (const durability of ["full", "relaxed"]) {
  test(`SIGKILL at random moments loses no acknowledged write and splits no turn (${durability})`, { timeout: 300_000 }, async () => {
    const dataDir = tempDir();
    let next = 0;
    const acked = new Map([["a", new Set()], ["b", new Set()]]);
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, [fixture("crash-writer.mjs"), dataDir, durability, String(next)], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let buffered = "";
      let count = 0;
      child.stdout.on("data", (d) => {
        buffered += d;
        let nl;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const [, name, n] = buffered.slice(0, nl).split(" ");
          buffered = buffered.slice(nl + 1);
          acked.get(name).add(Number(n));
          count++;
        }
      });
      // Listened for from the start: a writer that dies by itself fails the test (instead
      // of leaving it waiting for acknowledgements that never come).
      const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(`exited by itself (${signal ?? code})`)));
      // Let it get going, then kill it at a random moment of its work.
      let waitForAcks;
      const killMoment = new Promise((resolve) => {
        waitForAcks = setInterval(() => {
          if (count >= 20) {
            clearInterval(waitForAcks);
            setTimeout(() => resolve(null), Math.random() * 150);
          }
        }, 5);
      });
      const early = await Promise.race([killMoment, exited]);
      clearInterval(waitForAcks);
      assert.equal(early, null, `the writer ${early}`);
      child.kill("SIGKILL");
      await exited;
      next += 1_000_000;
    }
    const registry = new Registry({ dataDir });
    class Writer extends DurableObject {}
    for (const [name, ns] of acked) {
      const stub = await registry.get(name, Writer);
      await runInDurableObject(stub, async (_, ctx) => {
        const s = ctx.storage;
        for (const n of ns) {
          assert.equal(await s.get(`turn:${n}`), n, `acknowledged turn ${n} of ${name} lost`);
        }
        // Every turn on disk is whole: all four writes or none.
        const turns = await s.list({ prefix: "turn:" });
        const rows = new Set(s.sql.exec("SELECT n FROM turns").toArray().map((r) => r.n));
        assert.ok(turns.size >= ns.size);
        for (const [, n] of turns) {
          assert.equal(await s.get(`mirror:${n}`), -n, `turn ${n} half applied (mirror)`);
          assert.equal(s.kv.get(`sync:${n}`), n, `turn ${n} half applied (sync kv)`);
          assert.ok(rows.has(n), `turn ${n} half applied (sql)`);
        }
        assert.equal(rows.size, turns.size);
      });
    }
    await registry.close();
  });
}

test("no result leaves before the fsync that covers its writes, also when the object is reset while a sync runs and its successor writes and reads", () => {
  // Each fsync is slowed to 300 ms (a test hook), and native.syncsCompleted() counts them:
  // a result must not arrive before the sync that covers the writes it depends on. The
  // old code numbered commits per instance: the reset instance's second write was
  // released when the first sync ended, while the sync covering it ran under its successor.
  const run = spawnSync(process.execPath, [fixture("reset-during-sync.mjs")], {
    env: { ...process.env, OPEN_DO_TEST_FSYNC_DELAY_MS: "300" },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const { seen, readB } = JSON.parse(run.stdout.trim().split("\n").at(-1));
  assert.equal(seen.a, 1, "the first write's result follows the first sync");
  assert.equal(seen.b, 2, "the second write (made while the first sync ran) waits for the second sync");
  assert.equal(seen.c, 2, "the successor's write waits for the sync that covers it");
  assert.equal(readB, 1, "the successor reads the reset instance's committed write");
  assert.equal(seen.readB, 2, "and its result waits until that write is durable");
});
