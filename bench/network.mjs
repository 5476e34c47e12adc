// The network suite of `npm run bench` (issue #5): our built-in server (registry.listen,
// bench/network-server.mjs in a process of its own) next to Miniflare 4's HTTP server on
// the same Worker shape (bench/miniflare/worker.mjs), and next to a bare `ws` echo server.
// The load comes from other processes: wrk (Debian's package) for HTTP, `ws` clients
// (bench/ws-client.mjs) for WebSockets.
//   HTTP, no storage          64 connections, GET /do-noop → object → "ok"
//   HTTP, increments          64 connections, each request increments one of 1,000 objects
//   WebSocket echo            one connection, sequential round trips through an object
//   memory per connection     10,000 idle hibernated connections over 10 objects
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { startMiniflare } from "./anchors/miniflare.mjs";
import { summary } from "./util.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const WRK_SECONDS = 5;
const WRK_CONNECTIONS = 64;
/** wrk figures are shown as the time of this many requests at the measured rate. */
const PER = 10_000;
const ECHO_N = 20_000;
const HOLD = { connections: 10_000, rooms: 10 };

const FULL = "full";
const WORKERD = "workerd default (fsync per commit)";
const MF_HTTP = "Miniflare 4 (workerd's HTTP server)";

/** A Node script in a child process that prints one JSON line when ready and answers line commands. */
async function child(script, args = []) {
  const proc = spawn(process.execPath, [path.join(here, script), ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value;
  const ready = JSON.parse(await next());
  return {
    ready,
    proc,
    async command(line) {
      proc.stdin.write(`${line}\n`);
      return next();
    },
    close() {
      proc.stdin.end();
      proc.kill();
    },
  };
}

function wrk(url, script) {
  const args = ["-t1", `-c${WRK_CONNECTIONS}`, `-d${WRK_SECONDS}s`, ...(script ? ["-s", script] : []), url];
  const r = spawnSync("wrk", args, { encoding: "utf8" });
  if (r.error) throw new Error(`wrk failed to start (${r.error.message}); install Debian's wrk: apt-get install wrk`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1];
  if (!Number.isFinite(rps) || bad) throw new Error(`wrk ${args.join(" ")}: ${bad ? `${bad} failed responses` : "no result"}\n${r.stdout}${r.stderr}`);
  return (PER / rps) * 1000; // ms per PER requests
}

/** A wrk script spreading requests over 1,000 objects (?name=spread-N). */
function spreadScript(dir) {
  const file = path.join(dir, "spread.lua");
  fs.writeFileSync(
    file,
    `local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/inc?name=spread-" .. (i % 1000))
end
`,
  );
  return file;
}

function echo(url) {
  const r = spawnSync(process.execPath, [path.join(here, "ws-client.mjs"), "echo", url, String(ECHO_N)], { encoding: "utf8" });
  const ms = Number(r.stdout.trim());
  if (!Number.isFinite(ms)) throw new Error(`echo client failed: ${r.stdout}${r.stderr}`);
  return ms;
}

/** RSS of a process, in bytes. */
function rssOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

/** The workerd processes Miniflare started (children of this process). */
function workerdPids() {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === process.pid && stat.includes("(workerd)");
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Opens HOLD.connections idle sockets from another process; resolves with its handle once all are open. */
async function hold(url) {
  const proc = spawn(process.execPath, [path.join(here, "ws-client.mjs"), "hold", url, String(HOLD.connections), String(HOLD.rooms)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const line = (await lines.next()).value;
  if (line !== "ready") throw new Error(`the holding client failed: ${line}`);
  return { close: () => (proc.stdin.end(), proc.kill()) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runNetwork({ tmp, reps = 5, log = console.log }) {
  if (spawnSync("wrk", ["--version"]).error) throw new Error("The network suite needs wrk (Debian: apt-get install wrk).");
  const ours = await child("network-server.mjs", [tmp.sub("ours-network")]);
  const oursUrl = `http://127.0.0.1:${ours.ready.port}`;
  const mf = await startMiniflare(tmp.sub("miniflare-network"));
  const mfUrl = mf.url.origin;
  const bare = await child("ws-echo-server.mjs");
  const script = spreadScript(tmp.sub("wrk"));
  const rows = [];
  const lines = [];
  try {
    const http = [
      { name: "HTTP, 64 connections, object without storage", path: "/do-noop?name=noop", target: 5 },
      { name: "HTTP, 64 connections, increments over 1,000 objects", path: "/", script, target: 3 },
    ];
    for (const w of http) {
      wrk(`${oursUrl}${w.path}`, w.script); // warm-up (creates the 1,000 objects)
      wrk(`${mfUrl}${w.path}`, w.script);
      const ms = [[], []];
      for (let r = 0; r < reps; r++) {
        ms[0].push(wrk(`${oursUrl}${w.path}`, w.script));
        ms[1].push(wrk(`${mfUrl}${w.path}`, w.script));
      }
      const row = {
        workload: `${w.name} (wrk, ${WRK_SECONDS} s a run)`,
        n: PER,
        ours: { durability: FULL, ...summary(PER, ms[0]) },
        anchors: [{ anchor: MF_HTTP, durability: WORKERD, target: w.target, ...summary(PER, ms[1]) }],
      };
      rows.push(row);
      log(`  ${w.name}: ours ${Math.round(row.ours.ops)}/s; Miniflare ${Math.round(row.anchors[0].ops)}/s`);
    }

    const wsOurs = `ws://127.0.0.1:${ours.ready.port}/ws?name=echo`;
    const wsBare = `ws://127.0.0.1:${bare.ready.port}/`;
    const wsMf = `${mfUrl.replace("http", "ws")}/ws?name=echo`;
    const urls = [wsOurs, wsBare, wsMf];
    const ms = [[], [], []];
    for (let r = 0; r < reps; r++) {
      // The order rotates each repetition, so that no side always follows the same one
      // (the run before can leave a process finishing its work on a shared core).
      for (let k = 0; k < urls.length; k++) {
        const side = (r + k) % urls.length;
        ms[side].push(echo(urls[side]));
      }
    }
    const row = {
      workload: "WebSocket echo through an object, one connection",
      n: ECHO_N,
      ours: { durability: FULL, ...summary(ECHO_N, ms[0]) },
      anchors: [
        { anchor: "bare `ws` echo server (no object)", durability: "—", target: 1.0, ...summary(ECHO_N, ms[1]) },
        { anchor: "Miniflare 4, hibernatable socket", durability: WORKERD, target: undefined, ...summary(ECHO_N, ms[2]) },
      ],
    };
    rows.push(row);
    log(`  WebSocket echo: ours ${Math.round(row.ours.ops)}/s; bare ws ${Math.round(row.anchors[0].ops)}/s; Miniflare ${Math.round(row.anchors[1].ops)}/s`);

    // Memory: the server's RSS before and after 10,000 idle, hibernated connections.
    const before = Number(await ours.command("rss"));
    const clients = await hold(`ws://127.0.0.1:${ours.ready.port}/ws`);
    const evicted = Number(await ours.command("evict"));
    const live = Number(await ours.command("live"));
    const after = Number(await ours.command("rss"));
    clients.close();
    const [workerd] = workerdPids();
    const mfBefore = rssOf(workerd);
    const mfClients = await hold(`${mfUrl.replace("http", "ws")}/ws`);
    await sleep(12_000); // workerd hibernates objects idle for ~10 s
    const mfAfter = rssOf(workerd);
    mfClients.close();
    const perOurs = (after - before) / HOLD.connections;
    const perMf = (mfAfter - mfBefore) / HOLD.connections;
    const ratio = perOurs / perMf;
    const pass = ratio <= 0.1;
    lines.push(
      `Memory per idle hibernated WebSocket, ${HOLD.connections.toLocaleString("en-US")} connections over ${HOLD.rooms} objects (server RSS after minus before, divided by the connections):`,
      "",
      "| server | RSS before | RSS after | per connection |",
      "|---|---:|---:|---:|",
      `| ours (objects evicted: ${evicted}, live after: ${live}) | ${mib(before)} | ${mib(after)} | ${kib(perOurs)} |`,
      `| Miniflare 4 / workerd (after 12 s idle) | ${mib(mfBefore)} | ${mib(mfAfter)} | ${kib(perMf)} |`,
      "",
      `Target ≤ 1/10 of Miniflare's: ${(ratio * 100).toFixed(1)}% ${pass ? "PASS" : "FAIL"}`,
    );
    log(`  memory per hibernated connection: ours ${kib(perOurs)}, Miniflare ${kib(perMf)} (${(ratio * 100).toFixed(1)}%)`);
    return { rows, text: lines.join("\n"), checks: [`${pass ? "PASS" : "FAIL"}  #5  memory per idle hibernated WebSocket ≤ 1/10 of Miniflare's: ${(ratio * 100).toFixed(1)}%`] };
  } finally {
    ours.close();
    bare.close();
    await mf.close();
  }
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

