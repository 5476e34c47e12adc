// DurableObjectStub: how callers reach an object. `fetch()` has Fetch API semantics;
// every other property is an RPC method or property of the object (see rpc/).
//
// A stub answers every name but `then`. The object's own method names get real methods
// on a per-class stub class, so the common `stub.method(args)` is an ordinary call; any
// other name falls through to a wildcard (a Proxy at the end of the prototype chain)
// that gives the same result more slowly.
import type { DurableObjectId, OutputGate } from "./namespace.js";
import type { ObjectRuntime } from "./object-runtime.js";
import { runtimeKey, type ObjectDirectory } from "./registry.js";
import { rpcProperty, startCall, type Hook, type RpcPromise } from "./rpc/client.js";
import { classMethodNames } from "./rpc/path.js";

class DurableObjectStubBase<T = unknown> {
  readonly id: DurableObjectId;
  readonly name: string | undefined;
  readonly #directory: ObjectDirectory;
  readonly #uniqueKey: string;
  /** The live object, looked up once (a stub is used for many calls). */
  #runtime: ObjectRuntime | undefined;
  #hook: Hook | undefined;
  /** The object that made this stub (through its env): its calls wait for that object's writes. */
  readonly #owner: OutputGate | undefined;

  /** @internal */
  constructor(id: DurableObjectId, uniqueKey: string, directory: ObjectDirectory, owner?: OutputGate) {
    this.id = id;
    this.name = id.name;
    this.#uniqueKey = uniqueKey;
    this.#directory = directory;
    this.#owner = owner;
  }

  /**
   * Sends a request to the object's fetch() handler. As on Cloudflare (since 2021-11-10),
   * the URL must be absolute; its host only matters to the object's own routing.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    let request: Request;
    try {
      request = toRequest(input, init, this.#directory.fetchRequiresFullUrl);
    } catch (e) {
      return Promise.reject(e);
    }
    // An output of the calling object: it leaves once the writes before it are durable.
    const gate = this.#owner?.whenDurable();
    if (gate !== undefined) return gate.then(() => this._runtime().fetch(request));
    return this._runtime().fetch(request);
  }

  /** @internal */
  _runtime(): ObjectRuntime {
    const runtime = this.#runtime;
    if (runtime !== undefined && !runtime.closed) return runtime;
    return (this.#runtime = this.#directory.runtime(this.#uniqueKey, this.id));
  }

  /** @internal The registry's key for the object. */
  _key(): string {
    return runtimeKey(this.#uniqueKey, this.id);
  }

  /** @internal How RPC calls reach the object: through its mailbox, as events. */
  _hook(): Hook {
    return (this.#hook ??= {
      call: (path, args) => {
        const gate = this.#owner?.whenDurable();
        if (gate !== undefined) return gate.then(() => this._runtime().rpc(path, args));
        return this._runtime().rpc(path, args);
      },
      dup: () => this._hook(),
      dispose: () => {},
    });
  }

  /** @internal marker for the type parameter */
  declare readonly __type?: T;
}

// Names the object does not define still answer (Cloudflare's stubs are wildcards); the
// call then fails with Cloudflare's error from the receiving side.
Object.setPrototypeOf(
  DurableObjectStubBase.prototype,
  new Proxy(Object.create(null), {
    get: (_target, prop, receiver: DurableObjectStubBase) =>
      typeof prop === "symbol" || prop === "then" ? undefined : rpcProperty(receiver._hook(), [prop]),
  }),
);

/** `stub.constructor` is a (reserved) RPC name too, not the stub's class. */
function answerConstructorByRpc(prototype: object): void {
  Object.defineProperty(prototype, "constructor", {
    get(this: DurableObjectStubBase) {
      return rpcProperty(this._hook(), ["constructor"]);
    },
    configurable: true,
  });
}
answerConstructorByRpc(DurableObjectStubBase.prototype);

const stubClasses = new WeakMap<Function, typeof DurableObjectStubBase>();

/** The stub class for objects of `Class`: its RPC methods as real methods. */
export function stubClassFor(Class: Function, rpc: boolean): typeof DurableObjectStubBase {
  const cached = stubClasses.get(Class);
  if (cached !== undefined) return cached;
  const StubClass = class<T> extends DurableObjectStubBase<T> {} as typeof DurableObjectStubBase;
  answerConstructorByRpc(StubClass.prototype);
  {
    if (rpc) {
      for (const name of classMethodNames(Class)) {
        const path = [name];
        Object.defineProperty(StubClass.prototype, name, {
          value: function (this: DurableObjectStubBase, ...args: unknown[]): RpcPromise {
            return startCall(this._hook(), path, args);
          },
          writable: true,
          configurable: true,
        });
      }
    }
    stubClasses.set(Class, StubClass);
  }
  return StubClass;
}

/** Names a stub keeps for itself; they are not RPC methods. */
type Reserved = "fetch" | "connect" | "alarm" | "webSocketMessage" | "webSocketClose" | "webSocketError" | "dup" | "constructor";

/** The RPC side of a stub's type: each public method of T, returning a promise. */
export type RpcMethods<T> = {
  [K in keyof T as K extends Reserved ? never : T[K] extends (...args: any[]) => any ? K : never]: T[K] extends (
    ...args: infer A
  ) => infer R
    ? (...args: A) => RpcResult<R>
    : never;
};

/**
 * What an RPC call returns: a promise of the result, on which the methods of a returned
 * object or RpcTarget can be called before it settles (pipelining, as on Cloudflare:
 * `await room.counter().increment(2)` is one await).
 */
export type RpcResult<R> = Promise<Awaited<R>> & RpcPipeline<Awaited<R>>;

/** The methods a result offers for pipelining: an object's, not an array's or a primitive's. */
type RpcPipeline<V> = V extends readonly unknown[] | ((...args: any[]) => any) ? unknown : V extends object ? RpcMethods<V> : unknown;

/** A stub for an object of class T: `id`, `name`, `fetch()` and T's methods over RPC. */
export type DurableObjectStub<T = unknown> = DurableObjectStubBase<T> & RpcMethods<T>;
export const DurableObjectStub = DurableObjectStubBase;

function toRequest(input: RequestInfo | URL, init: RequestInit | undefined, fullUrl: boolean): Request {
  if (input instanceof Request) return init === undefined ? input : new Request(input, init);
  const url = String(input);
  if (URL.canParse(url)) return new Request(url, init);
  // Before compat date 2021-11-10 (durable_object_fetch_requires_full_url) a path was taken
  // relative to a placeholder host.
  if (!fullUrl && URL.canParse(url, "https://fake-host/")) return new Request(new URL(url, "https://fake-host/"), init);
  throw new TypeError(`Fetch API cannot load: ${url}`);
}

/**
 * Stubs of Workers dated before 2024-04-03 (the `rpc` flag): fetch() only, no wildcard
 * RPC properties. The methods of the base class, on a prototype chain without the proxy.
 */
let fetchOnly: typeof DurableObjectStubBase | undefined;
export function fetchOnlyStubClass(): typeof DurableObjectStubBase {
  if (fetchOnly !== undefined) return fetchOnly;
  const Legacy = class<T> extends DurableObjectStubBase<T> {} as typeof DurableObjectStubBase;
  const base = Object.create(Object.prototype, Object.getOwnPropertyDescriptors(DurableObjectStubBase.prototype));
  delete base.constructor;
  Object.setPrototypeOf(Legacy.prototype, base);
  return (fetchOnly = Legacy);
}
