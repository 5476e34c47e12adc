// Between Cap'n Web (the wire) and our RPC (lib/rpc/) in the endpoint's process: each side's
// stubs as the other side's.
//
// - Our stubs — to an object, to an RpcTarget or function an object returned — go to a
//   client as Cap'n Web stubs whose hook is a ForwardHook: a call on it is a call
//   (`stub.method(x)`), a property read is a read (`await stub.prop`, `stub.a.b`), each sent
//   through our stub as soon as Cap'n Web delivers it, so that reads keep their place among
//   calls (E-order) and meet the same rules (only class members; instance fields are
//   refused, as on Cloudflare).
// - A client's stubs — functions and RpcTargets it passed — reach objects as our stubs over
//   a CapnwebHook, whose calls and reads go back to the client.
//
// Ownership follows both sides' rule: whoever receives a stub in a result owns it, and a
// stub in arguments lasts as long as the call (dup() keeps one). Values crossing here are
// copies made by one side already; only stubs are translated.
import { RpcPromise, RpcStub } from "capnweb";
import { remoteError } from "../errors.js";
import { disposeSymbol, disposeValue, hookOf, makeStub, startCall, type Hook } from "../rpc/client.js";
import { disposed } from "../rpc/errors.js";
import { BATCH_CLIENT_GONE, type Peer } from "./sessions.js";
import { functionHook, StubHookBase, unwrap, type PropertyPath, type RpcPayload, type StubHook } from "./capnweb-internals.js";

/** `hook` (one of our stubs: an object's, or a returned RpcTarget's) as `peer` sees it. */
export function exposeStub(hook: Hook, peer: Peer): object {
  return new RpcStub(new ForwardHook(hook, peer) as never);
}

/** A Cap'n Web promise hook that settles as `promise` does (Cap'n Web marks it handled). */
function promiseHook(promise: Promise<unknown>): StubHook {
  return unwrap(new (RpcPromise as unknown as new (value: unknown) => object)(promise)).hook;
}

/** One of our stubs, as Cap'n Web's hook. */
class ForwardHook extends StubHookBase implements StubHook {
  #hook: Hook | undefined;
  readonly #peer: Peer;

  constructor(hook: Hook, peer: Peer) {
    super();
    this.#hook = hook;
    this.#peer = peer;
  }

  call(path: PropertyPath, args: RpcPayload): StubHook {
    const names = path.map(String);
    // Cap'n Web's hook for a local function delivers the arguments (waiting for pipelined
    // promises among them), calls, and releases them when the call is over.
    return functionHook((...values) => this.#call(names, values)).call([], args);
  }

  #call(path: string[], values: unknown[]): Promise<unknown> {
    const hook = this.#hook;
    if (hook === undefined) return Promise.reject(disposed());
    const peer = this.#peer;
    return Promise.resolve(startCall(hook, path, fromWire(values, peer) as unknown[])).then((value) => resultToWire(value, peer));
  }

  /** A property read, sent now: it keeps its place among the calls through this stub. */
  get(path: PropertyPath): StubHook {
    const hook = this.#hook;
    if (hook === undefined) return promiseHook(Promise.reject(disposed()));
    // The stub itself, awaited: Cap'n Web's answer for an RpcTarget stub.
    if (path.length === 0) return promiseHook(Promise.reject(new Error("Can't dup an RpcTarget stub as a promise.")));
    return promiseHook(hook.call(path.map(String), undefined).then((value) => resultToWire(value, this.#peer)));
  }

  map(path: PropertyPath, captures: StubHook[], instructions: unknown[]): StubHook {
    return this.get(path).map([], captures, instructions);
  }

  pull(): Promise<RpcPayload> {
    return Promise.reject(new Error("Tried to resolve a non-promise stub."));
  }

  dup(): StubHook {
    const hook = this.#hook;
    if (hook === undefined) throw disposed();
    return new ForwardHook(hook.dup(), this.#peer);
  }

  dispose(): void {
    const hook = this.#hook;
    this.#hook = undefined;
    hook?.dispose();
  }

  ignoreUnhandledRejections(): void {
    // No promise is made before someone asks for one.
  }

  onBroken(): void {
    // Our stubs do not break as a connection does.
  }
}

/** A client's stub, as our hook. `owned`: disposing ours disposes it (else its message's payload owns it). */
type CapnwebStub = object & { dup(): object; [Symbol.dispose](): void };

class CapnwebHook implements Hook {
  #stub: CapnwebStub | undefined;
  readonly #owned: boolean;
  readonly #peer: Peer;

  constructor(stub: object, owned: boolean, peer: Peer) {
    this.#stub = stub as CapnwebStub;
    this.#owned = owned;
    this.#peer = peer;
  }

  call(path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
    const stub = this.#stub;
    if (stub === undefined) return Promise.reject(disposed());
    // Sent, it would wait forever, and so would the batch's answer.
    if (!this.#peer.answers) return Promise.reject(new Error(BATCH_CLIENT_GONE));
    // The session is over: nothing goes to the client any more.
    const ended = this.#peer.ended;
    if (ended !== undefined) return Promise.reject(ended.reason);
    // A Cap'n Web RpcPromise on the stub's own hook at `path`: any name is a path there,
    // even those a stub answers locally (then, dup, toString...).
    const { hook, pathIfPromise } = unwrap(stub);
    const at = new (RpcPromise as unknown as new (hook: StubHook, path: PropertyPath) => ((...args: unknown[]) => unknown) & PromiseLike<unknown>)(hook, [
      ...(pathIfPromise ?? []),
      ...path,
    ]);
    let result: Promise<unknown>;
    if (args === undefined) {
      result = Promise.resolve(at);
    } else {
      const created: object[] = [];
      try {
        const wired = args.map((arg) => toWire(arg, this.#peer, created));
        // Observed at once: a call on one of our own stubs (a client may hand ours back)
        // is under way already, and must not fail unobserved if the session ends first.
        result = Promise.resolve(at(...wired));
      } catch (error) {
        // Cap'n Web refuses some calls as they are made (a session that just ended); a call
        // of ours fails through its promise, never by throwing.
        result = Promise.reject(error);
      } finally {
        // Cap'n Web took its own references while making the call.
        for (const stub of created) (stub as { [Symbol.dispose](): void })[Symbol.dispose]();
      }
    }
    const peer = this.#peer;
    return peer.wait(result).then((value) => resultFromWire(value, peer), (error) => {
      throw remoteError(error);
    });
  }

  dup(): Hook {
    const stub = this.#stub;
    if (stub === undefined) throw disposed();
    return new CapnwebHook(dupStub(stub), true, this.#peer);
  }

  dispose(): void {
    const stub = this.#stub;
    this.#stub = undefined;
    if (this.#owned) stub?.[Symbol.dispose]();
  }

  /** A new reference to the client's stub, to send back to it. */
  capnwebStub(): object {
    const stub = this.#stub;
    if (stub === undefined) throw disposed();
    return dupStub(stub);
  }
}

/**
 * A new reference to a client's stub. When the stub is a promise (a call the client
 * pipelined into the arguments), the reference is a Cap'n Web promise of its own, which
 * fails when the call does: whoever uses the reference sees that, and an unused one must
 * not end the process.
 */
function dupStub(stub: CapnwebStub): CapnwebStub {
  const copy = stub.dup() as CapnwebStub;
  unwrap(copy).hook.ignoreUnhandledRejections();
  return copy;
}

/**
 * A value of ours as Cap'n Web sends it: our stubs become Cap'n Web stubs (new references,
 * listed in `created`), inside arrays and plain objects too.
 */
function toWire(value: unknown, peer: Peer, created: object[], seen = new Map<object, unknown>()): unknown {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return value;
  const hook = hookOf(value);
  if (hook !== undefined) {
    const stub = hook instanceof CapnwebHook ? hook.capnwebStub() : new RpcStub(new ForwardHook(hook.dup(), peer) as never);
    created.push(stub);
    return stub;
  }
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(toWire(item, peer, created, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    seen.set(value, out);
    for (const key of Object.keys(value)) out[key] = toWire((value as Record<string, unknown>)[key], peer, created, seen);
    return out;
  }
  return value;
}

/** A result of ours, for Cap'n Web: it owns the new references; ours are let go. */
function resultToWire(value: unknown, peer: Peer): unknown {
  const wired = toWire(value, peer, []);
  disposeValue(value);
  return wired;
}

/**
 * A value from Cap'n Web, as ours: its stubs become our stubs over CapnwebHooks that borrow
 * them (the message they came in owns them; dup() takes a reference of one's own).
 */
function fromWire(value: unknown, peer: Peer, seen = new Map<object, unknown>()): unknown {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return value;
  if (value instanceof RpcStub) return makeStub(new CapnwebHook(value, false, peer));
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(fromWire(item, peer, seen));
    return out;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    seen.set(value, out);
    for (const key of Object.keys(value)) out[key] = fromWire((value as Record<string, unknown>)[key], peer, seen);
    return out;
  }
  return value;
}

/** A client's answer, as ours: disposing it lets go of the stubs in it, as a local result. */
function resultFromWire(value: unknown, peer: Peer): unknown {
  const ours = fromWire(value, peer);
  if (typeof ours === "object" && ours !== null && ours !== value && hookOf(ours) === undefined) {
    const release = (value as Record<symbol, (() => void) | undefined>)[Symbol.dispose];
    if (release !== undefined) Object.defineProperty(ours, disposeSymbol, { value: () => release.call(value), configurable: true });
  }
  return ours;
}
