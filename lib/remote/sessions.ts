// The endpoint's Cap'n Web sessions, with bounds on what a client can make the host hold.
//
// - A session may hold at most MAX_OUTSTANDING entries in its import and export tables.
//   Cap'n Web keeps every call a client pushes (and its result) until the client releases
//   it, and sets no limit: a client that pushes and never pulls or releases grew the host
//   by about 1 KB a call (200,000 pushes held 192 MB). Past the bound the session ends with
//   an error the client sees ("abort", then the WebSocket's close reason).
// - An HTTP batch's body may be at most MAX_RPC_BODY_BYTES (Cloudflare's limit on one RPC
//   message): refused from its Content-Length before any of it is read, else as soon as
//   that much has been read; 413 either way. A WebSocket message has the same limit in the
//   server itself (1009).
// - An HTTP batch session ends with its response: nothing the client sent can be answered
//   after that (calls back to the client fail at once, see bridge.ts), and what is still
//   pending fails instead of waiting forever.
import { RpcSession, type RpcTransport } from "capnweb";
import { Response } from "../response.js";
import { failWaitsOnPeer } from "./capnweb-internals.js";

/**
 * Entries (calls, results, stubs) a session's import and export tables may hold: ~1 KB
 * each, so ~100 MB at most. Generous, because a client that calls through a stub it never
 * disposes (the one-round-trip `ns.getByName(x).method()`) leaves one entry per call until
 * its garbage collector frees the stub (see client.ts), and a long-lived connection may
 * make many such calls between collections.
 */
export const MAX_OUTSTANDING = 100_000;
/** The tables are walked at least every this many messages received (see BoundedTransport). */
const WALK_EVERY = 1024;
/** Cloudflare's limit on one RPC message (MAX_JS_RPC_MESSAGE_SIZE, 32 MiB). */
export const MAX_RPC_BODY_BYTES = 32 * 1024 * 1024;
/** What waits on an HTTP batch client fails with, once its batch is read. */
export const BATCH_CLIENT_GONE =
  "An HTTP batch client cannot answer the server: it reads the answers only once its batch is over. Use a WebSocket session (connect()) for callbacks and promise arguments.";

/**
 * A session's client, as objects' calls back to it see it. What they wait for from it fails
 * when the session ends: an answer the client owed may depend on something that will never
 * come (one of the session's own results, when the client answers with a call on it), and
 * only the session's end breaks such a wait.
 */
export class Peer {
  /** False for an HTTP batch client: it reads answers only once its batch is over, so calls back to it cannot be answered. */
  readonly answers: boolean;
  #end: { reason: unknown } | undefined;
  readonly #waiting = new Set<(reason: unknown) => void>();

  constructor(answers: boolean) {
    this.answers = answers;
  }

  /** Set once the session has ended, with why. */
  get ended(): { readonly reason: unknown } | undefined {
    return this.#end;
  }

  /** `answer` (something the client is to send), failing when the session ends first. */
  wait<T>(answer: Promise<T>): Promise<T> {
    if (this.#end !== undefined) {
      answer.catch(ignore); // nobody else will look at it
      return Promise.reject(this.#end.reason);
    }
    return new Promise<T>((resolve, reject) => {
      this.#waiting.add(reject);
      answer.then(
        (value) => {
          this.#waiting.delete(reject);
          resolve(value);
        },
        (error) => {
          this.#waiting.delete(reject);
          reject(error);
        },
      );
    });
  }

  end(reason: unknown): void {
    if (this.#end !== undefined) return;
    this.#end = { reason };
    for (const reject of this.#waiting) reject(reason);
    this.#waiting.clear();
  }
}

/** Messages that may be an "abort": its name first, or a first string with an escape in it. */
const ABORT = /^\s*\[\s*"(?:abort"|[^"]*\\)/;

function isAbort(message: string): boolean {
  try {
    const parsed: unknown = JSON.parse(message);
    return Array.isArray(parsed) && parsed[0] === "abort";
  } catch {
    return false; // not JSON: Cap'n Web refuses it
  }
}

/**
 * At most how many table entries `message` can make, received or sent: a push or a
 * stream call, a pipe, and each stub or promise it passes (`["export",…]`,
 * `["promise",…]`). A count of those words between quotes, which inside a JSON string
 * would be escaped: an over-estimate only when data holds them bare.
 */
function possibleEntries(message: string): number {
  let n = 0;
  for (const word of ['"push"', '"stream"', '"pipe"', '"export"', '"promise"']) {
    for (let at = message.indexOf(word); at !== -1; at = message.indexOf(word, at + word.length)) n++;
  }
  return n;
}

/** Ends its session with a clear error once the session holds too much; tells the peer when the session ends. */
class BoundedTransport implements RpcTransport {
  readonly #inner: RpcTransport;
  readonly #peer: Peer;
  #session: RpcSession | undefined;
  /**
   * The tables' size when last counted, and the entries messages (both ways) may have
   * added since: their sum is meant never to under-estimate the tables, so they are
   * counted (a walk over every entry, which Cap'n Web's getStats() is) when the sum passes
   * the bound — and, in case Cap'n Web makes entries from something not counted here,
   * every WALK_EVERY messages. A session well inside its bound is walked rarely; one near
   * it, every few messages.
   */
  #counted = 0;
  #since = 0;
  #messages = 0;

  constructor(inner: RpcTransport, peer: Peer) {
    this.#inner = inner;
    this.#peer = peer;
  }

  attach(session: RpcSession): void {
    this.#session = session;
  }

  send(message: string): void | Promise<void> {
    // What the host sends makes entries too: stubs in results, calls on the client's stubs.
    this.#since += possibleEntries(message);
    return this.#inner.send(message);
  }

  async receive(): Promise<string> {
    const message = await this.#inner.receive();
    // A peer's "abort" is not given to Cap'n Web: capnweb 0.12.0 evaluates its payload
    // (stubs, calls) and then quotes the evaluated message with JSON.stringify, which calls
    // toJSON() on the stubs in it, that is, makes RPC calls nobody waits for (one ended the
    // host). The session ends here instead, with an error of our own.
    if (ABORT.test(message) && isAbort(message)) throw new Error("The client ended the RPC session (abort).");
    // Before Cap'n Web reads it: one message can make an entry per stub or promise it
    // holds (29 MB of ["export",-n] grew the host by 2 GB), so its possible entries count
    // against the bound now, not after the fact.
    const adds = possibleEntries(message);
    this.#since += adds;
    if (this.#session !== undefined && (this.#counted + this.#since > MAX_OUTSTANDING || ++this.#messages % WALK_EVERY === 0)) {
      const { imports, exports } = this.#session.getStats();
      this.#counted = imports + exports;
      this.#since = adds;
      if (this.#counted + adds > MAX_OUTSTANDING) {
        // Thrown from the session's read loop: it sends this to the client and ends.
        throw new RangeError(
          `RPC session ended: it held more than ${MAX_OUTSTANDING} calls, results and stubs not yet released. A client must pull (await) and release (dispose) what it pushes.`,
        );
      }
    }
    return message;
  }

  /** Cap'n Web's session ends, for whatever reason: its peer is gone. */
  abort(reason: unknown): void {
    this.#peer.end(reason);
    this.#inner.abort?.(reason);
  }
}

/** A Cap'n Web session over `transport` serving `main` to `peer`, bounded. */
export function startSession(transport: RpcTransport, main: object, peer: Peer): RpcSession {
  const bounded = new BoundedTransport(transport, peer);
  const session = new RpcSession(bounded, main as never);
  bounded.attach(session);
  return session;
}

/** Why a batch could not be read: the answer to give. */
function tooLarge(): Response {
  return new Response(`An RPC batch is limited to ${MAX_RPC_BODY_BYTES} bytes (32 MiB).`, { status: 413 });
}

/** The body as text, or undefined once it is over `limit` bytes (the rest is not read). */
async function boundedText(request: Request, limit: number): Promise<string | undefined> {
  const body = request.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(ignore);
      return undefined;
    }
    chunks.push(value);
  }
  const decoder = new TextDecoder();
  let text = "";
  for (const chunk of chunks) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** The messages of one HTTP batch in, the session's answers out. */
class BatchTransport implements RpcTransport {
  readonly #lines: string[];
  #next = 0;
  readonly #out: string[] = [];
  #over = false;
  readonly #received = deferred<void>();
  readonly #ended = deferred<never>();

  constructor(lines: string[]) {
    this.#lines = lines;
    // Both are awaited (by batchResponse, by the read loop) when it matters; a session that
    // ended early leaves them unobserved.
    this.#received.promise.catch(ignore);
    this.#ended.promise.catch(ignore);
  }

  /** Resolves once the session has read every message; rejects if it ended first. */
  get allReceived(): Promise<void> {
    return this.#received.promise;
  }

  send(message: string): void {
    if (!this.#over) this.#out.push(message);
  }

  receive(): Promise<string> {
    if (this.#next < this.#lines.length) return Promise.resolve(this.#lines[this.#next++]!);
    this.#received.resolve();
    return this.#ended.promise;
  }

  abort(reason: unknown): void {
    this.#received.reject(reason);
  }

  /** The response is made: the session ends, and what waits on the client fails. */
  end(): string {
    this.#over = true;
    this.#ended.reject(new Error(BATCH_CLIENT_GONE));
    return this.#out.join("\n");
  }
}

/**
 * Answers an HTTP batch (POST): Cap'n Web's newHttpBatchRpcResponse, with the body bounded
 * before it is read and the session bounded and ended with the response.
 */
export async function batchResponse(request: Request, main: object, peer: Peer): Promise<globalThis.Response> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > MAX_RPC_BODY_BYTES) {
    await request.body?.cancel().catch(ignore);
    return tooLarge();
  }
  const text = await boundedText(request, MAX_RPC_BODY_BYTES);
  if (text === undefined) return tooLarge();
  const transport = new BatchTransport(text === "" ? [] : text.split("\n"));
  const session = startSession(transport, main, peer);
  let body: string;
  try {
    await transport.allReceived;
    // The client sends nothing more: a promise it passed and did not resolve in the batch
    // never will be, and a stream it did not finish never ends. Calls back to it made by
    // objects fail before they are sent (bridge.ts); a result that streams to it is cut
    // when the session ends with the response.
    failWaitsOnPeer(session, new Error(BATCH_CLIENT_GONE));
    await session.drain();
  } catch (error) {
    // A malformed batch, or one past a bound: the client's mistake, not the server's.
    return new Response(`Bad RPC batch: ${error instanceof Error ? error.message : String(error)}`, { status: 400 });
  } finally {
    body = transport.end();
  }
  // No CORS header here: the endpoint names the calling origin when it allowed one, and a
  // wildcard would let any page read the answers (see endpoint.ts).
  return new Response(body);
}

function ignore(): void {}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(reason: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}
