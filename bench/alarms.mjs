// The alarm suite of `npm run bench` (issue #4): 10,000 objects each get one alarm, all
// due at the same millisecond; we report how late they fired (p50 / p99 / max) and that
// each fired exactly once — ours next to Miniflare 4 (workerd's alarm scheduler) doing the
// same work in the same run. Alarms are set from outside, 64 at a time: first an hour
// ahead (this creates the objects, untimed), then moved to a time a few seconds ahead, so
// that every alarm is set before they fall due; each alarm() run writes to its object's
// storage (at default durability).
import { DurableObject, Registry } from "../index.js";
import { startMiniflare } from "./anchors/miniflare.mjs";
import { each } from "./util.mjs";

/** The same object as worker.mjs's `Alarmed`. */
export class BenchAlarmed extends DurableObject {
  async setAlarmAt(at) {
    this.ctx.storage.kv.put("at", at);
    await this.ctx.storage.setAlarm(at);
  }
  alarm() {
    runs++;
    const fired = (this.ctx.storage.kv.get("fired") ?? 0) + 1;
    this.ctx.storage.kv.put("fired", fired);
    if (fired === 1) this.ctx.storage.kv.put("lag", Date.now() - this.ctx.storage.kv.get("at"));
  }
  result() {
    return { fired: this.ctx.storage.kv.get("fired") ?? 0, lag: this.ctx.storage.kv.get("lag") ?? null };
  }
}

const N = 10_000;
/** alarm() runs in this process (ours), to know when to collect. */
let runs = 0;

/** p50 / p99 / max of the lags, and how many fired exactly once, not at all, or more. */
function summarize(results) {
  const lags = results.filter((r) => r.lag !== null).map((r) => r.lag).sort((a, b) => a - b);
  const at = (q) => (lags.length === 0 ? NaN : lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]);
  return {
    n: results.length,
    once: results.filter((r) => r.fired === 1).length,
    never: results.filter((r) => r.fired === 0).length,
    more: results.filter((r) => r.fired > 1).length,
    p50: at(0.5),
    p99: at(0.99),
    max: lags.length === 0 ? NaN : lags[lags.length - 1],
  };
}

async function ours(dir, n = N) {
  const registry = new Registry({ dataDir: dir });
  const ns = registry.namespace(BenchAlarmed);
  const stubs = Array.from({ length: n }, (_, i) => ns.getByName(`alarm-${i}`));
  await each(n, 64, (i) => stubs[i].setAlarmAt(Date.now() + 3_600_000));
  const at = Date.now() + 3_000 + n; // moving them takes well under this
  await each(n, 64, (i) => stubs[i].setAlarmAt(at));
  const setLate = Date.now() > at;
  // Collect once every alarm ran (and a little more, to catch a second run), or after a minute.
  const before = runs;
  const deadline = at + 60_000;
  while (runs - before < n && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const results = [];
  await each(n, 64, async (i) => results.push(await stubs[i].result()));
  await registry.close();
  return { setLate, results };
}

/**
 * Miniflare doing the same. workerd keeps every object it touched open (two files each),
 * so 10,000 objects can exceed the file-descriptor limit; then it is measured again with
 * as many objects as it can hold, and the failure is reported too.
 */
async function miniflare(tmp) {
  const attempt = async (n, dir) => {
    const mf = await startMiniflare(dir);
    try {
      // workerd fsyncs each setAlarm one after another: allow ~1 ms per alarm to set them all.
      return { n, ...(await mf.alarms(n, () => Date.now() + 5_000 + n, 5_000)) };
    } finally {
      await mf.close();
    }
  };
  try {
    return await attempt(N, tmp.sub("miniflare-alarms"));
  } catch (e) {
    const failure = String(e.message).split("\n")[0].slice(0, 200);
    const fallback = await attempt(N / 4, tmp.sub("miniflare-alarms-fallback"));
    return { ...fallback, failure };
  }
}

/** Returns no throughput rows, and a section of its own for RESULTS.md. */
export async function runAlarms({ tmp, log = console.log }) {
  const sides = [{ name: "ours", ...(await ours(tmp.sub("ours-alarms"))) }];
  const anchor = { name: "Miniflare 4 (workerd)", ...(await miniflare(tmp)) };
  // When Miniflare could only do fewer objects, ours does that many too, for a like-for-like row.
  if (anchor.n !== N) sides.push({ name: `ours, ${anchor.n.toLocaleString("en")} objects`, ...(await ours(tmp.sub("ours-alarms-small"), anchor.n)) });
  sides.push(anchor);
  const lines = [
    `${N.toLocaleString("en")} objects, one alarm each, all due at the same millisecond; lag = when alarm() started − the time it was set for.`,
    "",
    "| side | fired exactly once | never | more than once | lag p50 | lag p99 | lag max |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const side of sides) {
    const s = summarize(side.results);
    lines.push(`| ${side.name} | ${s.once} / ${s.n} | ${s.never} | ${s.more} | ${s.p50} ms | ${s.p99} ms | ${s.max} ms |`);
    if (side.setLate) lines.push(`| (${side.name}: setting the alarms took longer than planned; the lag includes that) | | | | | | |`);
    if (side.failure) {
      lines.push(`| (${side.name} failed with ${N.toLocaleString("en")} objects — \`${side.failure}\` — so this row is ${s.n.toLocaleString("en")} objects) | | | | | | |`);
      log(`  ${side.name} failed with ${N} objects: ${side.failure}`);
    }
    log(`  ${side.name}: ${s.once}/${s.n} fired once, lag p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`);
  }
  return { rows: [], text: lines.join("\n") };
}
