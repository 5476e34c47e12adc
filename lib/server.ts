// registry.listen(): the built-in HTTP/WebSocket server. Connections, parsing and
// WebSocket framing are Rust's (src/engine/net); each request reaches a Worker-style
// `fetch(request, env, ctx)` here, and its Response goes back whole or streamed.
import { bodies, responses, servers, startNet, type NetListener } from "./net.js";
import { native } from "./native.js";
import { DISCONNECTED, WebSocket } from "./websocket.js";
import { LimitedLog } from "./log.js";
import { browserModule } from "./remote/browser-modules.js";
import { checkRpcOptions, RPC_PATH, rpcResponse, type NamespaceLookup, type RpcOptions, type RpcServer } from "./remote/endpoint.js";

/** The `ctx` a Worker's fetch handler receives. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  readonly props: Record<string, unknown>;
  /** The Worker's own exports as bindings (see RegistryOptions.exports). */
  readonly exports?: Record<string, unknown>;
}

export type FetchHandler = (request: Request, env: any, ctx: ExecutionContext) => Response | Promise<Response>;

export interface ListenOptions {
  /** Default 8787 (wrangler's); 0 picks a free port. */
  port?: number;
  /** Default "127.0.0.1". Use "0.0.0.0" (or "::") to accept connections from other machines. */
  hostname?: string;
  /** The Worker: routes each request, usually to an object through `env`'s namespaces. */
  fetch: FetchHandler;
  /** The `env` the handler gets. Default: the registry's. */
  env?: unknown;
  /**
   * The RPC endpoint at /.open-do/rpc, for `@redwoodjs/open-do/client` (Cap'n Web). On by
   * default; without a token or authorize hook it answers only when the server listens on
   * loopback, and there only requests for a loopback host (`localhost`, `*.localhost`,
   * `127.0.0.1`, `[::1]` or the bound address, with the port). Pages of other origins
   * are refused unless listed in `rpc.origins`. `false` turns it off. See RpcOptions.
   */
  rpc?: RpcOptions | false;
  /**
   * How long (ms) the server waits for a client before it closes the connection; Node's
   * http server has the same defaults. Each must be a positive whole number of ms: a
   * wait without an end is what lets a few thousand idle connections use up every file
   * descriptor.
   */
  timeouts?: {
    /** For a request's headers, from the connection's start or the end of the previous response. Default 60,000. */
    headers?: number;
    /** For the next request on a keep-alive connection, after a response. Default 5,000. */
    idle?: number;
    /** For a request's body, from the end of its headers; then 408 (or a body read error) and the connection closes. Default 300,000. */
    request?: number;
  };
  limits?: {
    /**
     * Bytes that may wait to go out on one WebSocket whose peer does not read. Past it the
     * socket is closed with 1011 (the object's webSocketError / error event hears why) and
     * the server logs one line. Default 64 MiB: two of the largest messages a peer may
     * send (32 MiB), so relaying them to an ordinary reader never trips it. A single
     * message of any size can always be sent; from 1 MiB waiting on, the peer's own
     * messages are not read until it catches up.
     */
    webSocketBufferBytes?: number;
  };
}

/** The largest value the native side takes (u32). */
const MAX_LIMIT = 2 ** 32 - 1;

function limitOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_LIMIT) {
    throw new RangeError(`listen() option ${name} must be a whole number from 1 to ${MAX_LIMIT}, not ${String(value)}.`);
  }
  return value;
}

/** Headers hyper writes itself. */
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "sec-websocket-accept"]);

/** Keeps the process running while a server listens, as a Node server does. */
let keepAlive: ReturnType<typeof setInterval> | undefined;
let listening = 0;

export class Server {
  readonly hostname: string;
  readonly port: number;
  readonly #id: number;
  readonly #fetch: FetchHandler;
  readonly #env: unknown;
  readonly #exports: Record<string, unknown> | undefined;
  readonly #rpc: (request: Request, websocket: boolean) => Promise<Response> | undefined;
  readonly #rpcEnabled: boolean;
  #closed: Promise<void> | undefined;
  #onClosed: () => void = () => {};
  /** Requests whose response is still going out, and waitUntil() promises. */
  readonly #inFlight = new Set<Promise<unknown>>();
  /** What clients can cause at will is logged a line now and then (see log.ts). */
  readonly #log = new LimitedLog();

  /** @internal Use registry.listen(). */
  constructor(options: ListenOptions, env: unknown, exports?: Record<string, unknown>, lookup?: NamespaceLookup) {
    this.#exports = exports;
    const rpcOptions = options.rpc === false || options.rpc?.enabled === false ? undefined : checkRpcOptions(options.rpc ?? {});
    const endpoint = rpcOptions !== undefined && lookup !== undefined ? { rpc: rpcOptions, lookup } : undefined;
    this.#rpcEnabled = endpoint !== undefined;
    if (typeof options?.fetch !== "function") throw new TypeError("listen() needs a fetch(request, env, ctx) handler.");
    const limits = {
      headersMs: limitOption(options.timeouts?.headers, "timeouts.headers"),
      idleMs: limitOption(options.timeouts?.idle, "timeouts.idle"),
      requestMs: limitOption(options.timeouts?.request, "timeouts.request"),
      webSocketBufferBytes: limitOption(options.limits?.webSocketBufferBytes, "limits.webSocketBufferBytes"),
    };
    startNet();
    this.#fetch = options.fetch;
    this.#env = options.env ?? env;
    const port = options.port ?? 8787;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`Invalid port: ${String(port)}`);
    const [id, hostname, bound] = native.netListen(options.hostname ?? "127.0.0.1", port, limits);
    this.#id = id;
    this.hostname = hostname;
    this.port = bound;
    const self: RpcServer = { address: hostname, port: bound };
    this.#rpc = (request, websocket) => (endpoint === undefined ? undefined : rpcResponse(request, endpoint.lookup, endpoint.rpc, self, websocket, this.#log));
    const listener: NetListener = {
      request: (request, method, target, headers, body, websocket) => this.#request(request, method, target, headers, body, websocket),
      closed: () => this.#onClosed(),
    };
    servers.set(id, listener);
    if (listening++ === 0) keepAlive = setInterval(() => {}, 1 << 30);
  }

  /** "http://hostname:port" */
  get url(): string {
    const host = this.hostname.includes(":") ? `[${this.hostname}]` : this.hostname;
    return `http://${host}:${this.port}`;
  }

  /**
   * Stops accepting connections, closes WebSockets with 1001 and waits for requests in
   * flight (30 s at most).
   */
  close(): Promise<void> {
    return (this.#closed ??= new Promise<void>((resolve) => {
      this.#onClosed = () => {
        if (--listening === 0) clearInterval(keepAlive);
        Promise.allSettled([...this.#inFlight]).then(() => resolve());
      };
      native.netCloseServer(this.#id);
    }));
  }

  #request(id: number, method: string, target: string, flat: string[], body: Uint8Array | true | null, websocket: boolean): void {
    const headers = new Headers();
    let host: string | undefined;
    for (let i = 0; i < flat.length; i += 2) {
      headers.append(flat[i]!, flat[i + 1]!);
      if (flat[i] === "host") host = flat[i + 1];
    }
    const url = target.startsWith("/") ? `http://${host ?? `${this.hostname}:${this.port}`}${target}` : target;
    let request: Request;
    // Set when the client's body turned out malformed or late: then a failing handler is
    // the client's doing, not the application's.
    let bodyFailed: { message: string; late: boolean } | undefined;
    try {
      const init: RequestInit & { duplex?: "half" } = { method, headers };
      if (body !== null) {
        init.body = (body === true ? requestBody(id, (message, late) => (bodyFailed = { message, late })) : body) as BodyInit;
        init.duplex = "half";
      }
      request = new Request(url, init);
    } catch (error) {
      if (body === true) native.netCancelBody(id);
      native.netRespond(id, 400, ["content-type", "text/plain;charset=UTF-8"], new TextEncoder().encode(`Bad request: ${(error as Error).message}`), false);
      return;
    }
    const ctx: ExecutionContext = {
      waitUntil: (promise) => this.#track(Promise.resolve(promise)),
      passThroughOnException: () => {},
      props: {},
      exports: this.#exports,
    };
    const rpc = target === RPC_PATH || target.startsWith(`${RPC_PATH}?`) ? this.#rpc(request, websocket) : this.#clientModule(method, target);
    const done = (async () => {
      let response: unknown;
      try {
        response = await (rpc ?? this.#fetch(request, this.#env, ctx));
        if (!(response instanceof Response)) throw new TypeError("The fetch handler did not return a Response.");
      } catch (error) {
        if (bodyFailed !== undefined) {
          const { message, late } = bodyFailed;
          const status = late ? 408 : 400;
          this.#log.write(late ? "request-body-late" : "request-body", () => `open-do: answered ${status} to a request whose body could not be read: ${message}.`);
          const text = late ? "Request timeout: the body did not arrive in time." : `Bad request: the body could not be read: ${message}.`;
          return void native.netRespond(id, status, ["content-type", "text/plain;charset=UTF-8", "connection", "close"], new TextEncoder().encode(text), false);
        }
        console.error("Uncaught exception in the fetch handler:", error);
        return respondError(id);
      }
      await send(id, response, websocket, this.#log);
      // A body the Worker answered without reading: hyper waits for it to be read before
      // it reads the connection's next request, so a keep-alive client stalled until the
      // idle timeout. It is read and dropped, as Node's server does (the request timeout
      // still bounds it); one the Worker began to read and left is let go of, which ends
      // the connection after the response.
      if (body === true && bodies.has(id)) {
        if (request.body !== null && !request.body.locked) void request.body.pipeTo(new WritableStream()).catch(() => {});
        else if (bodies.delete(id)) native.netCancelBody(id);
      }
    })();
    this.#track(done);
  }

  /** GET of one of the client's modules (for pages, see remote/browser-modules.ts). */
  #clientModule(method: string, target: string): Promise<Response> | undefined {
    if (!this.#rpcEnabled || method !== "GET" || !target.startsWith("/.open-do/")) return undefined;
    const text = browserModule(target.split("?")[0]!);
    if (text === undefined) return undefined;
    return Promise.resolve(new Response(text, { headers: { "content-type": "text/javascript; charset=utf-8" } }));
  }

  #track(promise: Promise<unknown>): void {
    const settled = promise.then(
      () => {},
      () => {},
    );
    this.#inFlight.add(settled);
    settled.then(() => this.#inFlight.delete(settled));
  }
}

function respondError(id: number): void {
  native.netRespond(id, 500, ["content-type", "text/plain;charset=UTF-8"], new TextEncoder().encode("Internal Server Error"), false);
}

/**
 * A streamed request body: each read pulls one chunk from the connection. `failed` hears
 * why the body could not be read (malformed chunking, a client gone, too slow).
 */
function requestBody(id: number, failed: (message: string, late: boolean) => void): ReadableStream<Uint8Array> {
  let wake: (() => void) | undefined;
  const settle = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        bodies.set(id, {
          chunk: (data) => {
            controller.enqueue(data);
            settle();
          },
          end: () => {
            controller.close();
            settle();
          },
          error: (message, late) => {
            failed(message, late);
            controller.error(new TypeError(`The request body could not be read: ${message}`));
            settle();
          },
        });
      },
      pull() {
        return new Promise<void>((resolve) => {
          wake = resolve;
          native.netPullBody(id);
        });
      },
      cancel() {
        bodies.delete(id);
        native.netCancelBody(id);
        settle();
      },
    },
    { highWaterMark: 0 },
  );
}

function flatHeaders(headers: Headers, skipLength: boolean): string[] {
  const flat: string[] = [];
  headers.forEach((value, name) => {
    if (CONNECTION_HEADERS.has(name) || (skipLength && name === "content-length")) return;
    flat.push(name, value);
  });
  return flat;
}

/**
 * The Worker's response cannot go out as it is (Fetch lets a header value hold control
 * characters that HTTP does not): the client gets a 500 rather than no answer at all.
 */
function unsendable(id: number, error: unknown, log: LimitedLog): void {
  log.write("unsendable-response", () => `A response could not be sent (${(error as Error)?.message ?? String(error)}): answered 500.`);
  respondError(id);
}

/** Writes `response` for request `id`: a WebSocket upgrade, a whole body, or a stream. */
async function send(id: number, response: Response, websocket: boolean, log: LimitedLog): Promise<void> {
  const ws = (response as { webSocket?: WebSocket | null }).webSocket;
  if (response.status === 101 && ws instanceof WebSocket) {
    if (!websocket) {
      // Any client can send such a request (Upgrade: websocket, but no valid handshake) to
      // a handler that looks at Upgrade alone: one line now and then, not one per request.
      log.write("websocket-not-upgrade", () => "The fetch handler answered a request that is not a WebSocket upgrade with a WebSocket: answered 500.");
      ws._neverConnected();
      return respondError(id);
    }
    const connection = ws._handOff();
    let socket: number;
    try {
      socket = native.netAcceptWebSocket(id, flatHeaders(response.headers, true), connection.socket || undefined);
    } catch (error) {
      // The client went away before the upgrade, or the response cannot be sent (a header
      // value HTTP does not allow): the server end hears a disconnect (a hibernatable one
      // through the router, so that it also leaves getWebSockets()), and a client still
      // there gets a 500.
      connection.clientClosed(1006, DISCONNECTED, false);
      if (!String((error as Error)?.message).includes("client went away")) unsendable(id, error, log);
      return;
    }
    connection.onNetwork(socket);
    return;
  }
  const status = response.status;
  const body = response.body;
  if (body === null) {
    try {
      native.netRespond(id, status, flatHeaders(response.headers, true), null, false);
    } catch (error) {
      unsendable(id, error, log);
    }
    return;
  }
  const reader = body.getReader();
  let aborted = false;
  let drained: (() => void) | undefined;
  responses.set(id, {
    drained: () => drained?.(),
    aborted: () => {
      aborted = true;
      drained?.();
    },
  });
  try {
    const first = await reader.read();
    if (first.done) return void native.netRespond(id, status, flatHeaders(response.headers, true), null, false);
    const second = await reader.read();
    if (second.done) return void native.netRespond(id, status, flatHeaders(response.headers, true), first.value, false);
    // More than one chunk: stream it, pausing whenever the client is slower than we are.
    if (!native.netRespond(id, status, flatHeaders(response.headers, false), null, true)) aborted = true;
    let chunk: ReadableStreamReadResult<Uint8Array> = first;
    let next: ReadableStreamReadResult<Uint8Array> | undefined = second;
    while (!chunk.done) {
      if (aborted) break;
      const outcome = native.netWriteBody(id, chunk.value);
      if (outcome === 2) break;
      if (outcome === 1) await new Promise<void>((resolve) => (drained = resolve));
      chunk = next ?? (await reader.read());
      next = undefined;
    }
    if (aborted || !chunk.done) {
      await reader.cancel().catch(() => {});
      native.netEndBody(id, true);
    } else {
      native.netEndBody(id, false);
    }
  } catch (error) {
    // Clients can cause this at will (a header value built from their input that HTTP
    // does not allow): now and then, not once per request.
    log.write("response-failed", () => `The response failed: ${(error as Error)?.stack ?? String(error)}`);
    // Before the head went out the client gets a 500; after, a cut connection.
    if (!native.netRespond(id, 500, [], null, false)) native.netEndBody(id, true);
  } finally {
    responses.delete(id);
  }
}
