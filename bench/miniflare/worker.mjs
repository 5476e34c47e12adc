// Worker + SQLite-backed Durable Object `Counter`: the Miniflare 4 / workerd anchor of
// `npm run bench` (driven by bench/anchors/miniflare.mjs). Adapted from the anchor
// measurements in the design notes; additions: kvGetLoop(), putCount() and /loop?kind=put.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.instance = crypto.randomUUID(); // changes when the object is evicted and re-created (hibernation check)
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, v TEXT)");
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/ws") {
      if (request.headers.get("Upgrade") !== "websocket")
        return new Response("expected websocket", { status: 426 });
      const pair = new WebSocketPair();
      this.ctx.acceptWebSocket(pair[1]); // hibernation API
      return new Response(null, { status: 101, webSocket: pair[0] });
    }
    if (url.pathname === "/ws-count")
      return Response.json({ sockets: this.ctx.getWebSockets().length, instance: this.instance });
    if (url.pathname === "/do-noop") return new Response("ok"); // DO dispatch without storage
    return new Response(String(await this.increment()));
  }

  // RPC: KV counter increment (same work as fetch()).
  async increment() {
    const n = ((await this.ctx.storage.get("count")) ?? 0) + 1;
    await this.ctx.storage.put("count", n);
    return n;
  }

  // RPC: one SQL insert (its own implicit transaction when called per event).
  sqlInsert(n) {
    this.ctx.storage.sql.exec("INSERT INTO rows (v) VALUES (?)", "row-" + n);
    return n;
  }

  // RPC: one KV write, nothing else (one write per event, for sequential-write loops).
  async putCount(n) {
    await this.ctx.storage.put("count", n);
    return n;
  }

  ping() { return 1; }

  // In-DO throughput loops. Timed from outside too (Date.now() in workerd only advances on I/O).
  async kvPutLoop(count, mode) {
    const t0 = Date.now();
    if (mode === "await") {
      for (let i = 0; i < count; i++) await this.ctx.storage.put("k" + i, i);
    } else if (mode === "noawait") {
      for (let i = 0; i < count; i++) this.ctx.storage.put("k" + i, i);
    } else if (mode === "kvsync") {
      // synchronous KV API of SQLite-backed DOs (ctx.storage.kv), if present
      for (let i = 0; i < count; i++) this.ctx.storage.kv.put("k" + i, i);
    } else if (mode === "getput") {
      // counter increment loop inside the DO: get + put of one key per iteration
      for (let i = 0; i < count; i++) {
        const n = ((await this.ctx.storage.get("count2")) ?? 0) + 1;
        await this.ctx.storage.put("count2", n);
      }
    }
    await this.ctx.storage.sync?.(); // flush the implicit transaction before returning
    return JSON.stringify({ count, mode, insideMs: Date.now() - t0 });
  }

  // Point reads of keys an earlier kvPutLoop(count, ...) wrote.
  async kvGetLoop(count) {
    let found = 0;
    for (let i = 0; i < count; i++) if ((await this.ctx.storage.get("k" + i)) !== undefined) found++;
    return JSON.stringify({ count, found });
  }

  sqlInsertLoop(count, mode) {
    const t0 = Date.now();
    if (mode === "txn") {
      this.ctx.storage.transactionSync(() => {
        for (let i = 0; i < count; i++)
          this.ctx.storage.sql.exec("INSERT INTO rows (v) VALUES (?)", "row-" + i);
      });
    } else {
      for (let i = 0; i < count; i++)
        this.ctx.storage.sql.exec("INSERT INTO rows (v) VALUES (?)", "row-" + i);
    }
    return JSON.stringify({ count, mode, insideMs: Date.now() - t0, rows: this.ctx.storage.sql.exec("SELECT count(*) c FROM rows").one().c });
  }

  webSocketMessage(ws, message) { ws.send(message === "instance?" ? this.instance : message); }
  webSocketClose(ws, code, reason) { try { ws.close(code, reason); } catch {} }
}

// One alarm per object for the alarm benchmark: when it fired, and how often.
export class Alarmed extends DurableObject {
  async setAlarmAt(at) {
    this.ctx.storage.kv.put("at", at);
    await this.ctx.storage.setAlarm(at);
  }
  alarm() {
    const fired = (this.ctx.storage.kv.get("fired") ?? 0) + 1;
    this.ctx.storage.kv.put("fired", fired);
    if (fired === 1) this.ctx.storage.kv.put("lag", Date.now() - this.ctx.storage.kv.get("at"));
  }
  result() {
    return { fired: this.ctx.storage.kv.get("fired") ?? 0, lag: this.ctx.storage.kv.get("lag") ?? null };
  }
}

/** Runs `f(i)` for i < n, `conc` at a time. */
async function each(n, conc, f) {
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    for (let i = next++; i < n; i = next++) await f(i);
  }));
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "default";
    const ns = env.COUNTER;
    if (url.pathname === "/noop") return new Response("ok"); // Worker only, no DO
    if (url.pathname === "/alarms/set" || url.pathname === "/alarms/results") {
      const n = Number(url.searchParams.get("n"));
      const at = Number(url.searchParams.get("at"));
      const stub = (i) => env.ALARMED.get(env.ALARMED.idFromName(`${name}-${i}`));
      if (url.pathname === "/alarms/set") {
        await each(n, 64, (i) => stub(i).setAlarmAt(at));
        return Response.json({ n });
      }
      const results = [];
      await each(n, 64, async (i) => results.push(await stub(i).result()));
      return Response.json(results);
    }
    // In-runtime loops: Worker -> DO calls inside workerd, no Node in the path.
    if (url.pathname === "/loop") {
      const n = Number(url.searchParams.get("n") ?? 1000);
      const kind = url.searchParams.get("kind") ?? "rpc";
      const conc = Number(url.searchParams.get("conc") ?? 1);
      const objs = Number(url.searchParams.get("objs") ?? 1);
      const stubs = [];
      for (let o = 0; o < objs; o++) stubs.push(ns.get(ns.idFromName(objs === 1 ? name : name + "-" + o)));
      let next = 0;
      const worker = async () => {
        while (true) {
          const i = next++;
          if (i >= n) return;
          const s = stubs[i % objs];
          if (kind === "rpc") await s.increment();
          else if (kind === "ping") await s.ping();
          else if (kind === "sql") await s.sqlInsert(i);
          else if (kind === "put") await s.putCount(i);
          else { const r = await s.fetch("http://do/inc"); await r.text(); }
        }
      };
      const t0 = Date.now();
      await Promise.all(Array.from({ length: conc }, worker));
      return Response.json({ n, kind, conc, objs, ms: Date.now() - t0 });
    }
    return ns.get(ns.idFromName(name)).fetch(request);
  },
};
