// Alarms (issue #4), first part: the storage API — setAlarm, getAlarm, deleteAlarm — with
// Cloudflare's errors, as writes of the turn, kept in _cf_METADATA as workerd keeps them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObject, Registry, runInDurableObject } from "../index.js";
import { runFixtureUnderFdLimit, tempDir } from "./helpers/objects.mjs";

class WithAlarm extends DurableObject {
  async alarm() {}
}

class SetsInConstructor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Allowed here even without an alarm() handler: Cloudflare defers the check.
    ctx.storage.setAlarm(Date.now() + 60_000);
  }
}

class NoHandler extends DurableObject {}

const inside = (stub, fn) => runInDurableObject(stub, (_, ctx) => fn(ctx.storage));

test("setAlarm / getAlarm / deleteAlarm: one alarm per object, a Date or ms", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", WithAlarm);
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  const first = Date.now() + 60_000;
  await inside(stub, (s) => s.setAlarm(first));
  assert.equal(await inside(stub, (s) => s.getAlarm()), first);
  const second = new Date(Date.now() + 120_000);
  await inside(stub, (s) => s.setAlarm(second));
  assert.equal(await inside(stub, (s) => s.getAlarm()), second.getTime(), "a new time replaces the old one");
  await inside(stub, (s) => s.deleteAlarm());
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("setAlarm refuses times <= 0 and non-times; a time in the past means now", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("a", WithAlarm);
  for (const bad of [0, -1, new Date(0)]) {
    await assert.rejects(inside(stub, (s) => s.setAlarm(bad)), { name: "TypeError", message: "setAlarm() cannot be called with an alarm time <= 0" });
  }
  await assert.rejects(inside(stub, (s) => s.setAlarm("soon")), TypeError);
  await assert.rejects(inside(stub, (s) => s.setAlarm(NaN)), TypeError);
  const before = Date.now();
  await inside(stub, (s) => s.setAlarm(1));
  const stored = await inside(stub, (s) => s.getAlarm());
  assert.ok(stored >= before && stored <= Date.now(), `clamped to now: ${stored}`);
  await registry.close();
});

test("a class without alarm() cannot set one, except from its constructor", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  await assert.rejects(inside(await registry.get("n", NoHandler), (s) => s.setAlarm(Date.now() + 1000)), {
    name: "TypeError",
    message: "Your Durable Object class must have an alarm() handler in order to call setAlarm()",
  });
  const stub = await registry.get("c", SetsInConstructor);
  assert.notEqual(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("alarm writes belong to transactions and roll back with them; deleteAll deletes the alarm", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const stub = await registry.get("t", WithAlarm);
  const kept = Date.now() + 60_000;
  await inside(stub, (s) => s.setAlarm(kept));
  await inside(stub, (s) =>
    s.transaction(async (txn) => {
      await txn.setAlarm(Date.now() + 90_000);
      assert.notEqual(await txn.getAlarm(), kept);
      txn.rollback();
    }),
  );
  assert.equal(await inside(stub, (s) => s.getAlarm()), kept);
  await assert.rejects(
    runInDurableObject(stub, (_, ctx) =>
      ctx.storage.transactionSync(() => {
        ctx.storage.deleteAlarm();
        throw new Error("undo");
      }),
    ),
    { message: "undo" },
  );
  assert.equal(await inside(stub, (s) => s.getAlarm()), kept, "a throwing transactionSync undoes deleteAlarm");
  await inside(stub, (s) => s.transaction((txn) => txn.deleteAlarm()));
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await inside(stub, (s) => s.setAlarm(kept));
  await inside(stub, (s) => s.deleteAll());
  assert.equal(await inside(stub, (s) => s.getAlarm()), null);
  await registry.close();
});

test("the alarm is stored: it survives closing and reopening the registry", async () => {
  const dataDir = tempDir();
  const time = Date.now() + 3_600_000;
  const first = new Registry({ dataDir });
  await inside(await first.get("p", WithAlarm), (s) => s.setAlarm(time));
  await first.close();
  const second = new Registry({ dataDir });
  assert.equal(await inside(await second.get("p", WithAlarm), (s) => s.getAlarm()), time);
  await second.close();
});

// ---- firing ----------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds (alarms fire on their own schedule). */
async function until(condition, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test("a due alarm runs alarm(info) once, then is deleted; getAlarm() is null while it runs", async () => {
  const runs = [];
  class Once extends DurableObject {
    async alarm(info) {
      runs.push({ info, during: await this.ctx.storage.getAlarm() });
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("o", Once);
  const at = Date.now() + 30;
  await inside(stub, (s) => s.setAlarm(at));
  await until(() => runs.length === 1, "the alarm");
  assert.deepEqual(runs[0], { info: { retryCount: 0, isRetry: false, scheduledTime: at }, during: null });
  await until(async () => (await inside(stub, (s) => s.getAlarm())) === null, "the alarm to be deleted");
  await sleep(50);
  assert.equal(runs.length, 1);
  await registry.close();
});

test("alarm() can set the next alarm; it runs again, and getAlarm() shows the new time", async () => {
  const seen = [];
  class Repeating extends DurableObject {
    async alarm() {
      const count = ((await this.ctx.storage.get("count")) ?? 0) + 1;
      await this.ctx.storage.put("count", count);
      if (count < 3) {
        const next = Date.now() + 10;
        await this.ctx.storage.setAlarm(next);
        seen.push((await this.ctx.storage.getAlarm()) === next);
      }
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("r", Repeating);
  await inside(stub, (s) => s.setAlarm(Date.now() + 10));
  await until(async () => (await inside(stub, (s) => s.get("count"))) === 3, "three runs");
  assert.deepEqual(seen, [true, true]);
  await until(async () => (await inside(stub, (s) => s.getAlarm())) === null, "no alarm left");
  await registry.close();
});

test("a failing alarm is retried with retryCount and isRetry, and stays set until it succeeds", async () => {
  const infos = [];
  const between = [];
  class Flaky extends DurableObject {
    async alarm(info) {
      infos.push(info);
      if (info.retryCount < 2) throw new Error(`failure ${info.retryCount}`);
    }
  }
  // Retries 200 ms and 400 ms apart: room to read the alarm between the first run and the next.
  const registry = new Registry({ dataDir: tempDir(), alarmRetryScale: 0.1 });
  const stub = await registry.get("f", Flaky);
  const at = Date.now() + 10;
  await inside(stub, (s) => s.setAlarm(at));
  await until(() => infos.length >= 1, "the first run");
  between.push(await inside(stub, (s) => s.getAlarm()));
  await until(() => infos.length === 3, "two retries");
  assert.deepEqual(
    infos.map((i) => [i.retryCount, i.isRetry, i.scheduledTime]),
    [
      [0, false, at],
      [1, true, at],
      [2, true, at],
    ],
  );
  assert.equal(between[0], at, "the alarm still counts as set after a failed run");
  await until(async () => (await inside(stub, (s) => s.getAlarm())) === null, "deletion after success");
  await registry.close();
});

test("after six retries the alarm is given up and deleted", async () => {
  let runs = 0;
  class Broken extends DurableObject {
    alarm() {
      runs++;
      throw new Error("always");
    }
  }
  const warnings = [];
  const onWarning = (w) => warnings.push(w.message);
  process.on("warning", onWarning);
  const registry = new Registry({ dataDir: tempDir(), alarmRetryScale: 0.001 });
  const stub = await registry.get("b", Broken);
  await inside(stub, (s) => s.setAlarm(Date.now() + 5));
  await until(async () => runs === 7 && (await inside(stub, (s) => s.getAlarm())) === null, "seven runs and deletion");
  await sleep(100);
  assert.equal(runs, 7);
  process.off("warning", onWarning);
  assert.ok(warnings.some((m) => m.includes("failed 7 times")), warnings.join("; "));
  await registry.close();
});

test("a new alarm set during a failing run replaces the retry", async () => {
  const infos = [];
  class Replacing extends DurableObject {
    async alarm(info) {
      infos.push(info);
      if (infos.length === 1) {
        await this.ctx.storage.setAlarm(Date.now() + 20);
        throw new Error("fails after setting a new alarm");
      }
    }
  }
  const registry = new Registry({ dataDir: tempDir(), alarmRetryScale: 0.001 });
  const stub = await registry.get("x", Replacing);
  await inside(stub, (s) => s.setAlarm(Date.now() + 5));
  await until(() => infos.length === 2, "the new alarm");
  assert.equal(infos[1].retryCount, 0, "not a retry: the new alarm");
  assert.equal(infos[1].isRetry, false);
  await registry.close();
});

test("an alarm wakes an evicted object (its constructor runs first)", async () => {
  let constructed = 0;
  let ran = 0;
  class Sleeper extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
    }
    alarm() {
      ran++;
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("s", Sleeper);
  await inside(stub, (s) => s.setAlarm(Date.now() + 50));
  assert.equal(registry.evictIdle(), 1);
  assert.equal(registry.liveObjects, 0);
  await until(() => ran === 1, "the alarm");
  assert.equal(constructed, 2);
  await registry.close();
});

test("an alarm interleaves with requests while it awaits other I/O", async () => {
  const log = [];
  let release;
  class Interleaving extends DurableObject {
    async alarm() {
      log.push("alarm start");
      await new Promise((resolve) => (release = resolve));
      log.push("alarm end");
    }
    ping() {
      log.push("ping");
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  const stub = await registry.get("i", Interleaving);
  await inside(stub, (s) => s.setAlarm(Date.now() + 5));
  await until(() => log.length === 1, "the alarm to start");
  await stub.ping();
  release();
  await until(() => log.length === 3, "the alarm to end");
  assert.deepEqual(log, ["alarm start", "ping", "alarm end"]);
  await registry.close();
});

test("ctx.abort() in alarm() retries it, unless retryAlarm is false", async () => {
  const runs = { retried: 0, final: 0 };
  class Aborting extends DurableObject {
    alarm(info) {
      const which = this.ctx.id.name;
      runs[which]++;
      if (info.retryCount === 0) this.ctx.abort("stop", which === "final" ? { retryAlarm: false } : undefined);
    }
  }
  const registry = new Registry({ dataDir: tempDir(), alarmRetryScale: 0.001 });
  for (const name of ["retried", "final"]) await inside(await registry.get(name, Aborting), (s) => s.setAlarm(Date.now() + 5));
  await until(() => runs.retried === 2, "the retry after abort()");
  await sleep(100);
  assert.deepEqual(runs, { retried: 2, final: 1 });
  assert.equal(await inside(await registry.get("final", Aborting), (s) => s.getAlarm()), null);
  await registry.close();
});

test("a retry waits Cloudflare's real delay (2 s plus up to 25%)", { timeout: 30_000 }, async () => {
  const times = [];
  class Slow extends DurableObject {
    alarm() {
      times.push(Date.now());
      if (times.length === 1) throw new Error("once");
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  await inside(await registry.get("s", Slow), (s) => s.setAlarm(Date.now() + 5));
  await until(() => times.length === 2, "the retry", 20_000);
  const delay = times[1] - times[0];
  assert.ok(delay >= 2000, `retried after ${delay} ms`);
  await registry.close();
});

test("registry.close() stops alarms; a pending alarm does not keep the process alive", async () => {
  let ran = 0;
  class Later extends DurableObject {
    alarm() {
      ran++;
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  await inside(await registry.get("l", Later), (s) => s.setAlarm(Date.now() + 30));
  await registry.close();
  await sleep(100);
  assert.equal(ran, 0);

  const { spawnSync } = await import("node:child_process");
  const script = `
    import { DurableObject, Registry, runInDurableObject } from ${JSON.stringify(new URL("../index.js", import.meta.url).href)};
    class Later extends DurableObject { alarm() {} }
    const registry = new Registry({ dataDir: ${JSON.stringify(tempDir())} });
    await runInDurableObject(await registry.get("l", Later), (_, ctx) => ctx.storage.setAlarm(Date.now() + 600000));
    console.log("set");
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  assert.equal(child.error, undefined, "the process ended by itself");
  assert.equal(child.stdout.trim(), "set");
});

test("more alarms due at once than the process may hold files open all fire, once each", { timeout: 120_000 }, async () => {
  // 1,000 objects under a limit of 256 descriptors (a budget of 48 open files): each run
  // holds its object's file until its turn commits, so they must take turns.
  const report = runFixtureUnderFdLimit("alarm-burst.mjs", [tempDir(), "1000"]);
  assert.deepEqual(report, { ran: 1000, histogram: { 1: 1000 }, errors: [] });
});

// ---- across restarts -----------------------------------------------------------------

class Remembering extends DurableObject {
  alarm(info) {
    fired.push({ name: this.ctx.id.name, scheduledTime: info.scheduledTime });
  }
}
const fired = [];

test("after a restart, stored alarms fire without anything touching their objects", async () => {
  fired.length = 0;
  const dataDir = tempDir();
  const first = new Registry({ dataDir });
  const soon = Date.now() + 600;
  const overdue = Date.now() + 200;
  await inside(await first.get("soon", Remembering), (s) => s.setAlarm(soon));
  await inside(await first.get("overdue", Remembering), (s) => s.setAlarm(overdue));
  await first.close(); // both are still pending
  await sleep(Math.max(0, overdue - Date.now()) + 20); // `overdue` falls due while no registry runs

  const second = new Registry({ dataDir });
  second.namespace(Remembering); // registering the class is enough
  await until(() => fired.length === 2, "both alarms");
  assert.deepEqual(
    fired.sort((a, b) => a.scheduledTime - b.scheduledTime),
    [
      { name: "overdue", scheduledTime: overdue },
      { name: "soon", scheduledTime: soon },
    ],
  );
  await second.close();
});

test("alarms survive a SIGKILL of the process that set them", { timeout: 60_000 }, async () => {
  fired.length = 0;
  const dataDir = tempDir();
  const { spawn } = await import("node:child_process");
  const script = `
    import { DurableObject, Registry, runInDurableObject } from ${JSON.stringify(new URL("../index.js", import.meta.url).href)};
    // Its alarm never finishes here, so it stays stored even if it fires before the kill.
    class Remembering extends DurableObject { alarm() { return new Promise(() => {}); } }
    const registry = new Registry({ dataDir: ${JSON.stringify(dataDir)} });
    const stub = registry.namespace(Remembering).getByName("killed");
    // Acknowledged = the event returned, so the alarm write is committed and fsynced.
    await runInDurableObject(stub, (_, ctx) => ctx.storage.setAlarm(Date.now() + 500));
    console.log("acknowledged");
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => String(d).includes("acknowledged") && resolve());
    child.on("exit", (code) => reject(new Error(`child exited early (${code})`)));
  });
  child.kill("SIGKILL");
  await new Promise((resolve) => child.on("exit", resolve));

  const registry = new Registry({ dataDir });
  registry.namespace(Remembering);
  await until(() => fired.length === 1, "the alarm set before the kill", 20_000);
  assert.equal(fired[0].name, "killed");
  await registry.close();
});

test("a namespace folder without an index (written elsewhere) is scanned for alarms", async () => {
  fired.length = 0;
  const dataDir = tempDir();
  const first = new Registry({ dataDir });
  await inside(await first.get("scanned", Remembering), (s) => s.setAlarm(Date.now() + 50));
  await first.close();
  const fs = await import("node:fs");
  const path = await import("node:path");
  for (const f of fs.readdirSync(path.join(dataDir, "Remembering"))) {
    if (f.startsWith("open-do-alarms")) fs.rmSync(path.join(dataDir, "Remembering", f));
  }
  const second = new Registry({ dataDir });
  second.namespace(Remembering);
  await until(() => fired.length === 1, "the scanned alarm");
  assert.equal(fired[0].name, undefined, "files alone do not know names");
  await second.close();
});

test("an alarm() run over the time limit resets the object and counts as a failed run", async () => {
  const infos = [];
  let constructed = 0;
  class Hanging extends DurableObject {
    constructor(ctx, env) {
      super(ctx, env);
      constructed++;
    }
    alarm(info) {
      infos.push(info.retryCount);
      if (info.retryCount === 0) return new Promise(() => {}); // never settles
    }
  }
  const registry = new Registry({ dataDir: tempDir(), alarmTimeLimit: 50, alarmRetryScale: 0.001 });
  const stub = await registry.get("h", Hanging);
  await inside(stub, (s) => s.setAlarm(Date.now() + 5));
  await until(() => infos.length === 2, "the retry after the time limit");
  assert.deepEqual(infos, [0, 1]);
  assert.equal(constructed, 2, "the reset object was constructed again for the retry");
  await until(async () => (await inside(stub, (s) => s.getAlarm())) === null, "deletion after the retry succeeded");
  await registry.close();
});

test("alarm() never runs twice at once for one object, even when a new alarm falls due during a run", async () => {
  let running = 0;
  let overlapped = false;
  let runs = 0;
  class Overlapping extends DurableObject {
    async alarm() {
      running++;
      overlapped ||= running > 1;
      runs++;
      if (runs === 1) await this.ctx.storage.setAlarm(Date.now()); // due at once, while this run goes on
      await sleep(50);
      running--;
    }
  }
  const registry = new Registry({ dataDir: tempDir() });
  await inside(await registry.get("o", Overlapping), (s) => s.setAlarm(Date.now() + 5));
  await until(() => runs === 2 && running === 0, "both runs");
  assert.equal(overlapped, false);
  await registry.close();
});

// A throw out of a threadsafe function's callback ends the process; the timer's callback
// reports what a due alarm's target throws instead.
test("an alarm target that throws is reported; the process and later alarms go on", async () => {
  const { alarmKey, scheduleAlarm, releaseAlarmKey } = await import("../dist/alarms.js");
  const logged = console.error;
  const reports = [];
  console.error = (...args) => reports.push(args.map(String).join(" "));
  // The timer never keeps the process alive by itself (a registry's objects do).
  const hold = setInterval(() => {}, 1000);
  try {
    let fired;
    const later = new Promise((resolve) => (fired = resolve));
    const bad = alarmKey(() => {
      throw new Error("target broke");
    });
    const good = alarmKey(() => fired("later alarm ran"));
    scheduleAlarm(bad, Date.now());
    scheduleAlarm(good, Date.now() + 50);
    assert.equal(await later, "later alarm ran");
    assert.ok(reports.some((r) => r.includes("target broke")), reports.join("\n"));
    releaseAlarmKey(bad);
    releaseAlarmKey(good);
  } finally {
    clearInterval(hold);
    console.error = logged;
  }
});
