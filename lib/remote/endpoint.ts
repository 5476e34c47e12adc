// The RPC endpoint of registry.listen(): objects reachable from other processes, machines
// and browsers over Cap'n Web (npm `capnweb`), by WebSocket or HTTP batch.
//
// The session's main object is the registry: `namespace(className)` → `getByName(name)` /
// `get(idString)` → the object, whose methods the client calls as on a local stub (the
// calls enter the object's mailbox and gates like any other). Cap'n Web pipelines: a
// client's `ns.getByName(x).method()` is one round trip.
//
// Who may call (DESIGN "Security defaults"). The endpoint runs objects' methods, storage
// writes included, so every request must show it comes from someone the server's owner
// meant: a web page the user merely visits can send a `text/plain` POST or open a
// WebSocket to any address — `localhost` too — without a CORS preflight, and a page whose
// DNS name it points at 127.0.0.1 (DNS rebinding) is even same-origin with us by name. So:
// - a page of another origin (its `Origin` header) is refused unless listed in
//   `rpc.origins`; there is no wildcard, and CORS preflights are answered for listed
//   origins only;
// - on a loopback server, only loopback host names (`Host`) are served — which a
//   rebinding page cannot send — unless a token is configured, which such a page
//   cannot know either;
// - off loopback, nothing is served without a token or an authorize hook.
import { createHash, timingSafeEqual } from "node:crypto";
import { RpcTarget, WebSocketTransport } from "capnweb";
import type { DurableObjectNamespace } from "../namespace.js";
import { Response } from "../response.js";
import { WebSocketPair } from "../websocket.js";
import { BATCHED_FRAMES, BATCHED_FRAMES_VALUE, BatchedTransport } from "./batched-transport.js";
import { exposeStub } from "./bridge.js";
import { batchResponse, Peer, startSession } from "./sessions.js";
import { TOKEN_PROTOCOL_PREFIX, WEBSOCKET_PROTOCOL } from "../client.js";
import type { LimitedLog } from "../log.js";

/** Where registry.listen() serves Cap'n Web (the client's constant: one definition). */
export { RPC_PATH } from "../client.js";

export interface RpcOptions {
  /** false turns the endpoint off. Default: on at RPC_PATH. */
  enabled?: boolean;
  /**
   * Required of clients: `connect(url, { token })` sends it, as `Authorization: Bearer
   * <token>` from Node and Bun and as a WebSocket subprotocol from browsers (which cannot
   * set headers on a WebSocket). Visible ASCII, no spaces. A token also lets a loopback
   * server answer other host names (a reverse proxy's, say). Compared in constant time.
   */
  token?: string;
  /**
   * Origins (`scheme://host[:port]`, exactly as browsers send them) whose pages may call,
   * besides the server's own. Default none: a page of another origin is refused (403),
   * with or without a token. No wildcards.
   */
  origins?: string[];
  /** Decides each object access; false refuses it. Runs after the token check. */
  authorize?: (request: Request, className: string, id: string) => boolean | Promise<boolean>;
}

/** The server an endpoint belongs to: its bound address and port. */
export interface RpcServer {
  address: string;
  port: number;
}

/** How the endpoint finds namespaces (the Registry). */
export interface NamespaceLookup {
  namespaceNamed(name: string): DurableObjectNamespace | undefined;
}

class RemoteNamespace extends RpcTarget {
  readonly #namespace: DurableObjectNamespace;
  readonly #className: string;
  readonly #check: (id: string) => Promise<void>;
  readonly #peer: Peer;

  constructor(namespace: DurableObjectNamespace, className: string, check: (id: string) => Promise<void>, peer: Peer) {
    super();
    this.#peer = peer;
    this.#namespace = namespace;
    this.#className = className;
    this.#check = check;
  }

  async getByName(name: string): Promise<object> {
    if (typeof name !== "string") throw new TypeError("getByName() takes a string.");
    const stub = this.#namespace.getByName(name);
    await this.#check(stub.id.toString());
    return exposeStub(stub._hook(), this.#peer);
  }

  async get(id: string): Promise<object> {
    const parsed = this.#namespace.idFromString(String(id));
    await this.#check(parsed.toString());
    return exposeStub(this.#namespace.get(parsed)._hook(), this.#peer);
  }

  idFromName(name: string): string {
    return this.#namespace.idFromName(String(name)).toString();
  }

  newUniqueId(): string {
    return this.#namespace.newUniqueId().toString();
  }

  get className(): string {
    return this.#className;
  }
}

class RemoteRegistry extends RpcTarget {
  readonly #lookup: NamespaceLookup;
  readonly #request: Request;
  readonly #authorize: RpcOptions["authorize"];
  readonly #peer: Peer;

  constructor(lookup: NamespaceLookup, request: Request, authorize: RpcOptions["authorize"], peer: Peer) {
    super();
    this.#peer = peer;
    this.#lookup = lookup;
    this.#request = request;
    this.#authorize = authorize;
  }

  namespace(className: string): RemoteNamespace {
    const namespace = typeof className === "string" ? this.#lookup.namespaceNamed(className) : undefined;
    if (namespace === undefined) throw new TypeError(`No Durable Object class "${String(className)}" is served here.`);
    const authorize = this.#authorize;
    const request = this.#request;
    const check = async (id: string) => {
      if (authorize !== undefined && !(await authorize(request, className, id))) {
        throw new Error(`Access to ${className} ${id} was refused.`);
      }
    };
    return new RemoteNamespace(namespace, className, check, this.#peer);
  }
}

/** Whether `address` (as the server reports its bound address) is a loopback address. */
export function isLoopback(address: string): boolean {
  return /^(127\.|::1$|::ffff:127\.)/.test(address);
}

/** The host name of a `Host` value and its port (undefined when it names none). */
function splitHost(host: string): [string, number | undefined] | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(host);
  if (match === null) return undefined;
  return [match[1]!.toLowerCase(), match[2] === undefined ? undefined : Number(match[2])];
}

/**
 * Whether `host` names a loopback server on `server`'s port: `localhost` and its
 * subdomains (RFC 6761 keeps them on loopback), 127.0.0.1, [::1] or the bound address.
 */
function isLoopbackHost(host: string, server: RpcServer): boolean {
  const parts = splitHost(host);
  if (parts === undefined) return false;
  const [name, port] = parts;
  if ((port ?? 80) !== server.port) return false;
  const bound = server.address.includes(":") ? `[${server.address.toLowerCase()}]` : server.address;
  return name === "localhost" || name.endsWith(".localhost") || name === "127.0.0.1" || name === "[::1]" || name === bound;
}

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();

/** `given === expected`, in time that does not depend on where they differ. */
function sameToken(given: string | undefined, expected: string): boolean {
  // Digests have equal lengths, which timingSafeEqual needs; the lengths of the tokens
  // themselves are not revealed either.
  return timingSafeEqual(digest(given ?? ""), digest(expected)) && given !== undefined;
}

/**
 * The token a client sent: `Authorization: Bearer` (Node, Bun, HTTP batch); a
 * Sec-WebSocket-Protocol entry (browsers: their WebSocket cannot send headers, and a
 * protocol travels in the handshake, so a wrong token is refused with 401 before the
 * upgrade and never lands in a URL, where logs and histories keep it); or, from clients
 * of earlier versions only, `?token=` in the URL — still accepted so that they keep
 * working, not recommended.
 */
function tokenOf(request: Request, url: URL, log: LimitedLog): string | undefined {
  // The scheme's name is case-insensitive (RFC 9110 §11.1).
  const bearer = /^bearer +(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
  if (bearer !== undefined) return bearer;
  for (const protocol of (request.headers.get("sec-websocket-protocol") ?? "").split(",")) {
    const entry = protocol.trim();
    if (entry.startsWith(TOKEN_PROTOCOL_PREFIX)) return Buffer.from(entry.slice(TOKEN_PROTOCOL_PREFIX.length), "base64url").toString();
  }
  const inUrl = url.searchParams.get("token") ?? undefined;
  if (inUrl !== undefined) {
    log.write("rpc-token-in-url", () => "open-do: an RPC client sent its token in the URL (?token=), where access logs and histories keep it; clients of this version send it in a header (connect(url, { token })).");
  }
  return inUrl;
}

/** `origin` in the form browsers send (lowercase, default port left out); undefined if it is none. */
function originOf(origin: string): string | undefined {
  try {
    const parsed = new URL(origin).origin;
    return parsed === "null" ? undefined : parsed;
  } catch {
    return undefined;
  }
}

/**
 * Whether a page of `origin` is the server's own: the host it asked for, over http (or
 * https, behind a TLS proxy that keeps the Host).
 */
function isOwnOrigin(origin: string, host: string | null): boolean {
  const page = originOf(origin);
  return host !== null && page !== undefined && [`http://${host}`, `https://${host}`].map(originOf).includes(page);
}

/** `options` checked, its origins in the form browsers send them. */
export function checkRpcOptions(options: RpcOptions): RpcOptions {
  // It travels in an HTTP header (Authorization: Bearer), which carries ASCII.
  if (options.token !== undefined && (typeof options.token !== "string" || !/^[\x21-\x7e]+$/.test(options.token))) {
    throw new TypeError("listen() option rpc.token must be a non-empty string of visible ASCII characters.");
  }
  if (options.origins === undefined) return options;
  if (!Array.isArray(options.origins)) throw new TypeError("listen() option rpc.origins must be an array of origins.");
  const origins = options.origins.map((origin) => {
    const normal = typeof origin === "string" && !origin.includes("*") ? originOf(origin) : undefined;
    if (normal === undefined || new URL(origin).href !== `${normal}/`) {
      throw new TypeError(`listen() option rpc.origins: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path or wildcard).`);
    }
    return normal;
  });
  return { ...options, origins };
}

const text = (body: string, status: number, headers: Record<string, string> = {}): Response => new Response(body, { status, headers: { "content-type": "text/plain;charset=UTF-8", ...headers } });

/**
 * Answers a request to RPC_PATH: a Cap'n Web session (WebSocket) or batch (POST), once
 * the request passed the checks above (else 401 or 403, saying why).
 */
export async function rpcResponse(
  request: Request,
  lookup: NamespaceLookup,
  options: RpcOptions,
  server: RpcServer,
  /** The server found a valid WebSocket handshake (the Upgrade header alone is no proof). */
  websocket: boolean,
  /** The server's log, limited per kind of line. */
  log: LimitedLog,
): Promise<globalThis.Response> {
  const url = new URL(request.url);
  const host = request.headers.get("host");
  if (!isLoopback(server.address)) {
    if (options.token === undefined && options.authorize === undefined) {
      return text("RPC is served on loopback only, unless a token or an authorize hook is configured.", 403);
    }
  } else if (options.token === undefined && (host === null || !isLoopbackHost(host, server))) {
    return text(`RPC on a loopback server answers requests for localhost, 127.0.0.1 or [::1] only, not for ${JSON.stringify(host)}, unless a token is configured.`, 403);
  }
  // Pages of listed origins are told so in CORS headers; same-origin pages need none.
  let cors: Record<string, string> = {};
  const origin = request.headers.get("origin");
  if (origin !== null && !isOwnOrigin(origin, host)) {
    const page = originOf(origin);
    if (page === undefined || !(options.origins ?? []).includes(page)) {
      return text(`RPC does not answer pages of other origins (${origin}); list them in listen({ rpc: { origins } }).`, 403);
    }
    cors = { "access-control-allow-origin": page, vary: "Origin" };
    if (request.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: { ...cors, "access-control-allow-methods": "POST", "access-control-allow-headers": "authorization, content-type", "access-control-max-age": "600" },
      });
    }
  }
  if (options.token !== undefined && !sameToken(tokenOf(request, url, log), options.token)) {
    return text("A valid token is required for RPC.", 401, cors);
  }
  const peer = new Peer(websocket);
  const main = new RemoteRegistry(lookup, request, options.authorize, peer);
  if (websocket) {
    // A browser that sent its token as a subprotocol must see one of its protocols chosen.
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    const protocol: Record<string, string> = offered.includes(WEBSOCKET_PROTOCOL) ? { "sec-websocket-protocol": WEBSOCKET_PROTOCOL } : {};
    const pair = new WebSocketPair();
    pair[1].accept();
    const socket = pair[1] as unknown as WebSocket;
    const batched = url.searchParams.get(BATCHED_FRAMES) === BATCHED_FRAMES_VALUE;
    startSession(batched ? new BatchedTransport(socket) : new WebSocketTransport(socket), main, peer);
    return new Response(null, { status: 101, webSocket: pair[0], headers: protocol });
  }
  if (request.method !== "POST") return text("This endpoint only accepts POST or WebSocket requests.", 400, cors);
  // Not capnweb's newWorkersRpcResponse: it adds `Access-Control-Allow-Origin: *`.
  const response = await batchResponse(request, main, peer);
  for (const [name, value] of Object.entries(cors)) response.headers.set(name, value);
  return response;
}
