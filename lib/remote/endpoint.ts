// The RPC endpoint of registry.listen(): objects reachable from other processes, machines
// and browsers over Cap'n Web (npm `capnweb`), by WebSocket or HTTP batch.
//
// The session's main object is the registry: `namespace(className)` → `getByName(name)` /
// `get(idString)` → the object, whose methods the client calls as on a local stub (the
// calls enter the object's mailbox and gates like any other). Cap'n Web pipelines: a
// client's `ns.getByName(x).method()` is one round trip.
import { newWorkersRpcResponse, RpcSession, RpcTarget } from "capnweb";
import type { DurableObjectNamespace } from "../namespace.js";
import { disposeSymbol, hookOf } from "../rpc/client.js";
import { Response } from "../response.js";
import { WebSocketPair } from "../websocket.js";
import { BATCHED_FRAMES, BATCHED_FRAMES_VALUE, BatchedTransport } from "./batched-transport.js";
import "./capnweb-internals.js"; // repairs to Cap'n Web that must be in place before a session starts

/** Where registry.listen() serves Cap'n Web (the client's constant: one definition). */
export { RPC_PATH } from "../client.js";

export interface RpcOptions {
  /** false turns the endpoint off. Default: on at RPC_PATH. */
  enabled?: boolean;
  /** Required of clients (`connect(url, { token })`, or `Authorization: Bearer <token>`). */
  token?: string;
  /** Decides each object access; false refuses it. Runs after the token check. */
  authorize?: (request: Request, className: string, id: string) => boolean | Promise<boolean>;
}

/** How the endpoint finds namespaces (the Registry). */
export interface NamespaceLookup {
  namespaceNamed(name: string): DurableObjectNamespace | undefined;
}

/** Methods of RpcTarget itself and of every object: never forwarded to an object. */
const NOT_FORWARDED = new Set(["then", "constructor", "fetch", "connect", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "dup"]);

/** What a client holds for an object, or for a stub an object returned: a Cap'n Web target. */
class Forwarder extends RpcTarget {}

/**
 * A Cap'n Web target whose every method name calls the same name on `stub` (a Durable
 * Object stub, or one of our RPC stubs that a method returned); results go back through
 * toWire(). Disposing it (the client let go) disposes the stub.
 */
function forwarder(stub: object): Forwarder {
  const call = stub as Record<string | symbol, (...args: unknown[]) => unknown>;
  return new Proxy(new Forwarder(), {
    get(target, prop, receiver) {
      if (prop === disposeSymbol) return () => call[disposeSymbol]?.();
      if (typeof prop === "symbol" || NOT_FORWARDED.has(prop)) return Reflect.get(target, prop, receiver);
      return (...args: unknown[]) => Promise.resolve(call[prop]!(...args)).then(toWire);
    },
    getOwnPropertyDescriptor: () => undefined,
    has: () => false,
  });
}

/**
 * A result as Cap'n Web can send it: our stubs (to RpcTargets or functions the object
 * returned) become forwarders, inside arrays and plain objects too.
 */
function toWire(value: unknown, seen = new Map<object, unknown>()): unknown {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return value;
  if (hookOf(value) !== undefined) return forwarder(value);
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(toWire(item, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    seen.set(value, out);
    for (const key of Object.keys(value)) out[key] = toWire((value as Record<string, unknown>)[key], seen);
    return out;
  }
  return value;
}

class RemoteNamespace extends RpcTarget {
  readonly #namespace: DurableObjectNamespace;
  readonly #className: string;
  readonly #check: (id: string) => Promise<void>;

  constructor(namespace: DurableObjectNamespace, className: string, check: (id: string) => Promise<void>) {
    super();
    this.#namespace = namespace;
    this.#className = className;
    this.#check = check;
  }

  async getByName(name: string): Promise<Forwarder> {
    if (typeof name !== "string") throw new TypeError("getByName() takes a string.");
    const stub = this.#namespace.getByName(name);
    await this.#check(stub.id.toString());
    return forwarder(stub);
  }

  async get(id: string): Promise<Forwarder> {
    const parsed = this.#namespace.idFromString(String(id));
    await this.#check(parsed.toString());
    return forwarder(this.#namespace.get(parsed));
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

  constructor(lookup: NamespaceLookup, request: Request, authorize: RpcOptions["authorize"]) {
    super();
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
    return new RemoteNamespace(namespace, className, check);
  }
}

/** Answers a request to RPC_PATH: a Cap'n Web session (WebSocket) or batch (POST). */
export async function rpcResponse(request: Request, lookup: NamespaceLookup, options: RpcOptions): Promise<globalThis.Response> {
  const url = new URL(request.url);
  if (options.token !== undefined) {
    const given = url.searchParams.get("token") ?? /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    if (given !== options.token) return new Response("A valid token is required for RPC.", { status: 401 });
  }
  const main = new RemoteRegistry(lookup, request, options.authorize);
  const batched = url.searchParams.get(BATCHED_FRAMES) === BATCHED_FRAMES_VALUE;
  if (batched && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
    const pair = new WebSocketPair();
    pair[1].accept();
    new RpcSession(new BatchedTransport(pair[1] as unknown as WebSocket), main);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  try {
    return await newWorkersRpcResponse(request, main);
  } catch (error) {
    // A malformed HTTP batch: the client's mistake, not the server's.
    return new Response(`Bad RPC batch: ${error instanceof Error ? error.message : String(error)}`, { status: 400 });
  }
}
