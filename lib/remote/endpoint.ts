// The RPC endpoint of registry.listen(): objects reachable from other processes, machines
// and browsers over Cap'n Web (npm `capnweb`), by WebSocket or HTTP batch.
//
// The session's main object is the registry: `namespace(className)` → `getByName(name)` /
// `get(idString)` → the object, whose methods the client calls as on a local stub (the
// calls enter the object's mailbox and gates like any other). Cap'n Web pipelines: a
// client's `ns.getByName(x).method()` is one round trip.
import { RpcTarget, WebSocketTransport } from "capnweb";
import type { DurableObjectNamespace } from "../namespace.js";
import { Response } from "../response.js";
import { WebSocketPair } from "../websocket.js";
import { BATCHED_FRAMES, BATCHED_FRAMES_VALUE, BatchedTransport } from "./batched-transport.js";
import { exposeStub } from "./bridge.js";
import { batchResponse, Peer, startSession } from "./sessions.js";

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

/** Answers a request to RPC_PATH: a Cap'n Web session (WebSocket) or batch (POST). */
export async function rpcResponse(request: Request, lookup: NamespaceLookup, options: RpcOptions): Promise<globalThis.Response> {
  const url = new URL(request.url);
  if (options.token !== undefined) {
    const given = url.searchParams.get("token") ?? /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    if (given !== options.token) return new Response("A valid token is required for RPC.", { status: 401 });
  }
  const websocket = request.headers.get("upgrade")?.toLowerCase() === "websocket";
  const peer = new Peer(websocket);
  const main = new RemoteRegistry(lookup, request, options.authorize, peer);
  if (websocket) {
    const pair = new WebSocketPair();
    pair[1].accept();
    const socket = pair[1] as unknown as WebSocket;
    const batched = url.searchParams.get(BATCHED_FRAMES) === BATCHED_FRAMES_VALUE;
    startSession(batched ? new BatchedTransport(socket) : new WebSocketTransport(socket), main, peer);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  if (request.method === "POST") return batchResponse(request, main, peer);
  return new Response("This endpoint only accepts POST or WebSocket requests.", { status: 400 });
}
