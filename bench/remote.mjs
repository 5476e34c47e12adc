// The remote RPC suite of `npm run bench` (issue #7): calls from this process into objects
// hosted by another process (bench/remote-host.mjs, over `@redwoodjs/open-do/client`),
// next to Miniflare 4's RPC from Node (getDurableObjectNamespace stubs, through its
// proxy) on the same class shape, in the same run, at default durability.
//   sequential ping          one call at a time, no storage
//   64 in flight, ping       64 calls outstanding
//   pipelined two-step       ns.getByName(name).ping(): a new stub and a call, one round trip
// Each side first runs each workload untimed for WARM_UP_MS (steady state), then the timed
// repetitions alternate ours and Miniflare.
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { connect } from "@redwoodjs/open-do/client";
import { startMiniflare } from "./anchors/miniflare.mjs";
import { each, summary, timed } from "./util.mjs";

/** How long each side runs a workload, untimed, before its timed runs. */
const WARM_UP_MS = 2_000;

async function warmUp(run) {
  let spent = 0;
  do spent += await run();
  while (spent < WARM_UP_MS);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const SEQ_N = 2_000;
const CONC_N = 5_000;
/** Fewer: each of Miniflare's two-step calls makes a new stub through its proxy (~20 ms). */
const TWO_STEP_N = 300;

async function host(dataDir) {
  const proc = spawn(process.execPath, [path.join(here, "remote-host.mjs"), dataDir], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const { url } = JSON.parse((await lines.next()).value);
  return { url, close: () => proc.stdin.end() };
}

export async function runRemote({ tmp, reps = 5, log = console.log }) {
  const ours = await host(tmp.sub("ours-remote"));
  const connection = connect(ours.url);
  const oursNs = connection.namespace("Counter");
  const mf = await startMiniflare(tmp.sub("miniflare-remote"));
  const mfNs = await mf.namespace();
  const workloads = [
    {
      name: "remote sequential ping (another process)",
      n: SEQ_N,
      target: 10,
      ours: () => {
        const stub = oursNs.getByName("seq");
        return timed(async () => {
          for (let i = 0; i < SEQ_N; i++) await stub.ping();
        });
      },
      anchor: () => {
        const stub = mfNs.get(mfNs.idFromName("seq"));
        return timed(async () => {
          for (let i = 0; i < SEQ_N; i++) await stub.ping();
        });
      },
    },
    {
      name: "remote ping, 64 in flight",
      n: CONC_N,
      target: undefined,
      ours: () => {
        const stub = oursNs.getByName("conc");
        return timed(() => each(CONC_N, 64, () => stub.ping()));
      },
      anchor: () => {
        const stub = mfNs.get(mfNs.idFromName("conc"));
        return timed(() => each(CONC_N, 64, () => stub.ping()));
      },
    },
    {
      name: "remote pipelined two-step: getByName(name).ping()",
      n: TWO_STEP_N,
      target: undefined,
      ours: () =>
        timed(async () => {
          for (let i = 0; i < TWO_STEP_N; i++) await oursNs.getByName(`two-${i % 100}`).ping();
        }),
      anchor: () =>
        timed(async () => {
          for (let i = 0; i < TWO_STEP_N; i++) {
            const stub = mfNs.get(mfNs.idFromName(`two-${i % 100}`));
            await stub.ping();
            stub[Symbol.dispose]?.(); // Miniflare's proxy asks for it
          }
        }),
    },
  ];
  const rows = [];
  try {
    for (const w of workloads) {
      // Warm-up: each side runs the workload for at least WARM_UP_MS first (JIT-compiled
      // steady state: our client and host take ~10,000 calls to get there).
      await warmUp(w.ours);
      await warmUp(w.anchor);
      const ms = [[], []];
      for (let r = 0; r < reps; r++) {
        ms[0].push(await w.ours());
        ms[1].push(await w.anchor());
      }
      const row = {
        workload: w.name,
        n: w.n,
        ours: { durability: "full", ...summary(w.n, ms[0]) },
        anchors: [{ anchor: "Miniflare 4, RPC from Node (getDurableObjectNamespace)", durability: "workerd default (fsync per commit)", target: w.target, ...summary(w.n, ms[1]) }],
      };
      rows.push(row);
      log(`  ${w.name}: ours ${Math.round(row.ours.ops)}/s; Miniflare ${Math.round(row.anchors[0].ops)}/s`);
    }
  } finally {
    connection.close();
    ours.close();
    await mf.close();
  }
  return rows;
}
