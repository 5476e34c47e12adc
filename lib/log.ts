// One clear line per problem, not a flood: what a client can trigger at will (a malformed
// body, an upgrade that is none) is logged at most once per period per kind (and server),
// and the next line says how many were left out. The network engine's own lines
// (src/engine/net, EventQueue::log) are limited the same way before they reach JS.

/** A kind of line is written at most once per this many ms. */
const LOG_EVERY_MS = 10_000;

export class LimitedLog {
  readonly #logged = new Map<string, { at: number; suppressed: number }>();

  /** Writes `line()` to the log (console.error) unless a line of `kind` went out recently. */
  write(kind: string, line: () => string): void {
    const now = Date.now();
    const last = this.#logged.get(kind);
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#logged.set(kind, { at: now, suppressed: 0 });
    console.error(suppressed > 0 ? `${line()} (${suppressed} more like this since the last such line)` : line());
  }
}
