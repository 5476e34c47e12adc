// The calling side of RPC: stubs, RPC promises and properties, pipelining, disposal.
//
// A stub answers every property name except `then` (so it never looks like a promise):
// `stub.x` is an RPC property, which can be called (`stub.x(1)`), awaited (reads the
// property on the receiver) or followed (`stub.x.y`). A call returns an RPC promise: a
// thenable whose properties pipeline on the result, so `stub.a().b()` needs no await in
// between, and fails with a()'s error if a() fails.
//
// Every stub holds a `Hook`: what actually carries calls (to a Durable Object through its
// mailbox, to a local RpcTarget or function, or to a result still to come).
import { copyArgs, copyResult, disposeAll } from "./copy.js";
import { cannotPipeline, disposed, notAFunction, notImplemented } from "./errors.js";
import { invoke, resolve } from "./path.js";
import { remoteError } from "../errors.js";

/** Carries calls for stubs. `args === undefined` reads the property at `path`. */
export interface Hook {
  call(path: readonly string[], args: unknown[] | undefined): Promise<unknown>;
  dup(): Hook;
  dispose(): void;
}

/** Where a stub's hook is kept (stub and property proxies answer this symbol). */
export const HOOK = Symbol("open-do.rpc.hook");
/** RPC properties answer this with their path. */
export const PROPERTY = Symbol("open-do.rpc.property");

const dispose: symbol = (Symbol as unknown as { dispose?: symbol }).dispose ?? Symbol.for("nodejs.dispose");
export { dispose as disposeSymbol };

// ---- local targets -------------------------------------------------------------------

/**
 * An RpcTarget or function made reachable through stubs. Its `[Symbol.dispose]()` runs
 * when the last stub to it is disposed.
 */
export class Capability {
  #refs = 0;
  constructor(readonly target: object) {}

  hook(): Hook {
    return new TargetHook(this);
  }

  /** Runs a call on the target, asynchronously, and copies its result for the caller. */
  run(path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
    return Promise.resolve().then(async () => {
      const value = args === undefined ? resolve(this.target, path).value : invoke(this.target, path, args);
      return copyResult(await value);
    }).catch((error) => {
      throw remoteError(error);
    });
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs > 0) return;
    const onDispose = (this.target as Record<symbol, unknown>)[dispose];
    if (typeof onDispose === "function") {
      // A disposer's failure has no caller to go to, whether it throws or (an async
      // disposer) rejects: it must not end the process either.
      try {
        const result = onDispose.call(this.target);
        if (typeof (result as Promise<unknown> | undefined)?.then === "function") (result as Promise<unknown>).then(undefined, ignore);
      } catch {
        // As above.
      }
    }
  }
}

class TargetHook implements Hook {
  #disposed = false;
  constructor(readonly capability: Capability) {
    capability.retain();
  }

  call(path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
    if (this.#disposed) return Promise.reject(disposed());
    return this.capability.run(path, args);
  }

  dup(): Hook {
    if (this.#disposed) throw disposed();
    return new TargetHook(this.capability);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.capability.release();
  }
}

/** Calls on the result of a call that may not have arrived yet (pipelining). */
class PipelineHook implements Hook {
  constructor(readonly result: Promise<unknown>) {}

  call(path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
    return this.result.then((value) => callOn(value, path, args));
  }

  dup(): Hook {
    return this;
  }

  dispose(): void {
    this.result.then(disposeValue, () => {});
  }
}

/** Follows `path` through a received value: locally through plain data, remotely past a stub. */
function callOn(value: unknown, path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
  for (let i = 0; i < path.length; i++) {
    const hook = hookOf(value);
    if (hook !== undefined) return hook.call(path.slice(i), args);
    if (typeof value !== "object" || value === null) return Promise.reject(cannotPipeline());
    if (!Object.hasOwn(value, path[i]!)) return Promise.reject(notImplemented(path[i]!));
    value = (value as Record<string, unknown>)[path[i]!];
  }
  if (args === undefined) return Promise.resolve(value);
  const hook = hookOf(value);
  if (hook !== undefined) return hook.call([], args);
  return Promise.reject(notAFunction(path[path.length - 1] ?? ""));
}

// ---- what callers hold ----------------------------------------------------------------

/** The hook behind a stub or RPC property, if `value` is one. */
export function hookOf(value: unknown): Hook | undefined {
  if ((typeof value === "function" || typeof value === "object") && value !== null) {
    const hook = (value as Record<symbol, unknown>)[HOOK];
    if (hook !== undefined && (value as Record<symbol, unknown>)[PROPERTY] === undefined) return hook as Hook;
  }
  return undefined;
}

/** Starts a call through `hook`: arguments are copied now, as the caller's state is now. */
export function startCall(hook: Hook, path: readonly string[], args: unknown[]): RpcPromise {
  let copied: { values: unknown[]; created: Hook[] };
  try {
    copied = copyArgs(args);
  } catch (e) {
    return new RpcPromise(Promise.reject(e));
  }
  const result = hook.call(path, copied.values);
  // Stubs made for the callee's arguments last as long as the call (dup() keeps one).
  if (copied.created.length > 0) {
    const release = () => disposeAll(copied.created);
    result.then(release, release);
  }
  return new RpcPromise(result);
}

/** A stub over `hook`: what RpcTargets, functions and received stubs look like. */
export function makeStub(hook: Hook): any {
  return new Proxy(function rpcStub() {}, {
    apply: (_target, _this, args: unknown[]) => startCall(hook, [], args),
    get: (_target, prop) => {
      if (prop === HOOK) return hook;
      if (prop === "then") return undefined;
      if (prop === "dup") return () => makeStub(hook.dup());
      if (prop === dispose) return () => hook.dispose();
      if (typeof prop === "symbol") return undefined;
      return rpcProperty(hook, [prop]);
    },
  });
}

/** `stub.a.b`: callable, awaitable (reads the property), and followable. */
export function rpcProperty(hook: Hook, path: readonly string[]): any {
  let read: Promise<unknown> | undefined;
  const value = () => (read ??= hook.call(path, undefined));
  return new Proxy(function rpcProperty() {}, {
    apply: (_target, _this, args: unknown[]) => startCall(hook, path, args),
    get: (_target, prop) => {
      if (prop === HOOK) return hook;
      if (prop === PROPERTY) return path;
      if (prop === "then") return (ok?: (v: unknown) => unknown, fail?: (e: unknown) => unknown) => value().then(ok, fail);
      if (prop === "catch") return (fail?: (e: unknown) => unknown) => value().catch(fail);
      if (prop === "finally") return (f?: () => void) => value().finally(f);
      if (typeof prop === "symbol") return undefined;
      return rpcProperty(hook, [...path, prop]);
    },
  });
}

/**
 * What a call returns: a thenable for the result whose other properties pipeline on it.
 * Disposing it disposes the stubs in the result.
 */
export class RpcPromise {
  readonly #result: Promise<unknown>;
  constructor(result: Promise<unknown>) {
    this.#result = result;
    // The call is under way already, but its caller may never look at the result: a
    // pipelined step (`stub.a().b()` never awaits a()), or a conversion that calls
    // toString()/valueOf() on a stub and gets promises back (`${stub}`). Its failure is
    // the caller's to see, through then(); unobserved, it must not end the process.
    result.catch(ignore);
  }
  then<A = unknown, B = never>(ok?: ((v: any) => A | PromiseLike<A>) | null, fail?: ((e: any) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.#result.then(ok, fail);
  }
  catch<B = never>(fail?: ((e: any) => B | PromiseLike<B>) | null): Promise<unknown> {
    return this.#result.catch(fail);
  }
  finally(f?: (() => void) | null): Promise<unknown> {
    return this.#result.finally(f);
  }
  /** @internal */
  static pipeline(promise: RpcPromise, name: string): unknown {
    return rpcProperty(new PipelineHook(promise.#result), [name]);
  }
}
Object.defineProperty(RpcPromise.prototype, dispose, {
  value(this: RpcPromise) {
    this.then(disposeValue, () => {});
  },
});
// Every other property of an RPC promise pipelines on its result.
Object.setPrototypeOf(
  RpcPromise.prototype,
  new Proxy(Object.create(null), {
    get: (_target, prop, receiver) => (typeof prop === "symbol" ? undefined : RpcPromise.pipeline(receiver, prop)),
  }),
);

function ignore(): void {}

/** Disposes what a call returned: a stub, or the stubs inside a returned object. */
export function disposeValue(value: unknown): void {
  const hook = hookOf(value);
  if (hook !== undefined) hook.dispose();
  else if (typeof value === "object" && value !== null) (value as Record<symbol, (() => void) | undefined>)[dispose]?.();
}

// ---- RpcStub --------------------------------------------------------------------------

/**
 * `new RpcStub(target)`: a stub over a local RpcTarget or function, e.g. to `dup()` it and
 * hand it out several times. Calls through it run on `target` asynchronously.
 */
export const RpcStub = function RpcStub(this: unknown, target: object) {
  if (!new.target) throw new TypeError("Class constructor RpcStub cannot be invoked without 'new'");
  const hook = hookOf(target);
  if (hook !== undefined) return makeStub(hook.dup());
  if ((typeof target !== "object" && typeof target !== "function") || target === null) {
    throw new TypeError("RpcStub expects an RpcTarget or a function.");
  }
  return makeStub(new Capability(target).hook());
} as unknown as new <T extends object>(target: T) => T & { dup(): T; [Symbol.dispose](): void };
