// `@redwoodjs/open-do/client`: stubs to objects served by another process's
// registry.listen(), over Cap'n Web. Runs in Node, Bun and browsers (no native code).
//
//   const rooms = connect("ws://localhost:8787").namespace<ChatRoom>("ChatRoom");
//   await rooms.getByName("lobby").post(message); // one round trip (pipelined)
import { RpcSession } from "capnweb";
import { BATCHED_FRAMES, BATCHED_FRAMES_VALUE, BatchedTransport } from "./remote/batched-transport.js";

export const RPC_PATH = "/.open-do/rpc";

/**
 * How a browser sends its token: browsers cannot set headers on a WebSocket, so it offers
 * two subprotocols, WEBSOCKET_PROTOCOL (which the server chooses) and this prefix followed
 * by the token in base64url. Node and Bun send `Authorization: Bearer <token>` instead.
 */
export const WEBSOCKET_PROTOCOL = "open-do";
export const TOKEN_PROTOCOL_PREFIX = "open-do.token.";

/**
 * Methods of T, as a remote caller sees them: every result is a promise, on which a
 * returned object's methods can be called at once (pipelined into the same round trip).
 */
export type RemoteStub<T> = {
  [K in keyof T as T[K] extends (...args: any[]) => any ? K : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => RemoteResult<R> : never;
};

/** A remote call's result: the promise, and the methods of the object it will be. */
export type RemoteResult<R> = Promise<Awaited<R>> &
  (Awaited<R> extends readonly unknown[] | ((...args: any[]) => any) ? unknown : Awaited<R> extends object ? RemoteStub<Awaited<R>> : unknown);

export interface RemoteNamespace<T> {
  getByName(name: string): RemoteStub<T>;
  get(id: string): RemoteStub<T>;
  idFromName(name: string): Promise<string>;
  newUniqueId(): Promise<string>;
}

export interface Connection {
  namespace<T = unknown>(className: string): RemoteNamespace<T>;
  /** Closes the session; calls in flight fail. */
  close(): void;
}

export interface ConnectOptions {
  /**
   * The server's RPC token (RpcOptions.token). Sent in a header (in browsers, in the
   * WebSocket's subprotocol list), never in the URL.
   */
  token?: string;
}

/** Node and Bun (and Deno) let a WebSocket carry headers; browsers do not. */
const headersAllowed = typeof process !== "undefined" && typeof (process as { versions?: { node?: string } }).versions?.node === "string";

function base64url(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A WebSocket to `url` that carries `token` as this runtime allows. */
function openSocket(url: string, token: string | undefined): WebSocket {
  if (token === undefined) return new WebSocket(url);
  if (headersAllowed) {
    // Not in the WebSocket type of the DOM library: Node's and Bun's own extension.
    return new (WebSocket as unknown as new (url: string, init: { headers: Record<string, string> }) => WebSocket)(url, { headers: { authorization: `Bearer ${token}` } });
  }
  return new WebSocket(url, [WEBSOCKET_PROTOCOL, TOKEN_PROTOCOL_PREFIX + base64url(token)]);
}

/**
 * What calls in flight (and every later call) reject with once the connection is gone:
 * Cloudflare's disconnect error, `.retryable` — the caller may retry an idempotent call on
 * a new connect(). `cause` says what the socket reported.
 */
export class ConnectionLostError extends Error {
  readonly retryable = true;
  constructor(cause: unknown) {
    super("Network connection lost.", { cause });
  }
}

/**
 * What calls reject with when the server answered the connection with an HTTP error instead
 * of a WebSocket: a missing or wrong token (401), RPC refused (403: on a non-loopback
 * address without a token, for a host name or a page origin it does not serve), or a
 * server whose RPC endpoint is off. Not retryable: the same connect() would be refused
 * again.
 */
export class ConnectionRefusedError extends Error {
  readonly retryable = false;
  constructor(
    message: string,
    /** The HTTP status the server answered with. */
    readonly status: number,
  ) {
    super(message);
    this.name = "ConnectionRefusedError";
  }
}

/**
 * Every stub the client hands out holds an entry in the server's session until it is
 * disposed, and the one-round-trip call `ns.getByName(x).method()` leaves its stub to the
 * garbage collector: without this, a long-lived connection making such calls would fill
 * the server's tables (10,000 entries) and be ended. So a stub the program can no longer
 * reach is disposed once collected; `using` (or [Symbol.dispose]()) still frees it at once.
 */
const unreachable = new FinalizationRegistry<Disposable>((stub) => {
  try {
    stub[Symbol.dispose]();
  } catch {
    // The connection is gone, and the server's session with it.
  }
});

/** `stub` behind a handle of its own, disposed once the program drops the handle. */
function collectable<T extends object>(stub: T): T {
  const handle = new Proxy(stub, {});
  unreachable.register(handle, stub as unknown as Disposable);
  return handle;
}

/** The server's namespace stub `ns`, whose stubs (and itself) go when unreachable. */
function remoteNamespace<T>(ns: any): RemoteNamespace<T> {
  const namespace: RemoteNamespace<T> = {
    getByName: (name) => collectable(ns.getByName(name)),
    get: (id) => collectable(ns.get(id)),
    idFromName: (name) => ns.idFromName(name),
    newUniqueId: () => ns.newUniqueId(),
  };
  unreachable.register(namespace, ns);
  return namespace;
}

/** Connects to a registry.listen() server: `url` is its address (http(s) or ws(s)). */
export function connect(url: string | URL, options: ConnectOptions = {}): Connection {
  const target = new URL(url);
  if (target.protocol === "http:") target.protocol = "ws:";
  if (target.protocol === "https:") target.protocol = "wss:";
  if (target.pathname === "/" || target.pathname === "") target.pathname = RPC_PATH;
  target.searchParams.set(BATCHED_FRAMES, BATCHED_FRAMES_VALUE);
  const socket = openSocket(target.href, options.token);
  let opened = false;
  socket.addEventListener("open", () => (opened = true), { once: true });
  // A WebSocket that never opened tells nothing of why; the server's HTTP answer does.
  let lost: Promise<Error> | undefined;
  const transport = new BatchedTransport(socket, (cause) => (lost ??= opened ? Promise.resolve(new ConnectionLostError(cause)) : whyNotOpened(target, options.token, cause)));
  const session = new RpcSession(transport);
  const main = session.getRemoteMain() as any;
  return {
    namespace: (className) => remoteNamespace(main.namespace(className)),
    close: () => main[Symbol.dispose]?.(),
  };
}

/**
 * Why a connection never opened: asks the same address over plain HTTP and reports the
 * server's answer. An unreachable server (or a browser's CORS refusal of the question) is
 * a lost connection, which a later connect() may find up.
 */
async function whyNotOpened(target: URL, token: string | undefined, cause: unknown): Promise<Error> {
  const probe = new URL(target);
  probe.protocol = probe.protocol === "wss:" ? "https:" : "http:";
  let response: Response;
  try {
    response = await fetch(probe, token === undefined ? undefined : { headers: { authorization: `Bearer ${token}` } });
  } catch {
    return new ConnectionLostError(cause);
  }
  const text = (await response.text().catch(() => "")).trim().slice(0, 200);
  const shown = new URL(target);
  shown.search = "";
  if (response.status === 401 || response.status === 403) {
    return new ConnectionRefusedError(`The server at ${shown.href} refused the RPC connection (HTTP ${response.status})${text ? `: ${text}` : "."}`, response.status);
  }
  return new ConnectionRefusedError(
    `The server at ${shown.href} did not accept an RPC connection: it answered HTTP ${response.status}${text ? ` (${JSON.stringify(text)})` : ""} instead of a WebSocket. Is its RPC endpoint on (listen({ rpc }))?`,
    response.status,
  );
}
