// What the endpoint needs of Cap'n Web (npm `capnweb`) beyond its public API, found once at
// load and checked, so that a capnweb whose internals moved fails here, loudly, rather than
// later and subtly.
//
// - The hook behind a stub (`StubHook`): what carries a stub's calls, property reads and
//   disposal. The endpoint gives Cap'n Web hooks of its own (bridge.ts), so that a remote
//   `stub.prop` is a property read and `stub.method()` a call — Cap'n Web's public
//   RpcTarget cannot tell the two apart when the object lives behind a mailbox.
// - Four repairs of capnweb 0.12.0, whose session leaves promises without a listener on
//   paths a peer controls; on Node and Bun an unhandled rejection ends the process, so one
//   message from any client could end the host (see __test__/remote-hostile.test.mjs):
//   1. An import of a promise the peer exported (["promise", id] in a message) starts with
//      a pending pull; when the import is dropped before anything pulls it (the call it was
//      an argument of failed first, or it came inside a reject), the pull is rejected with
//      nobody waiting.
//   2. A resolution the peer sends for one of our imports ("resolve") is kept as it is,
//      calls in it included; a call in it that fails rejects with nobody waiting (a "push"
//      is marked so that this cannot happen: resolutions now are too).
//   3. A stub we send to the peer whose hook is a promise (a call the peer pipelined into
//      arguments, handed back to it as a stub) is exported as it is; nothing pulls it unless
//      the peer does, and its failure rejected with nobody waiting. Exported hooks are now
//      marked as pushes are.
//   4. A call the peer makes inside a value (["import", id, path, args] among a call's
//      arguments) is marked only when the value is a push's own: one among the arguments of
//      a call that waits (for a promise the peer passed, say) failed with nobody waiting.
//      Every hook a message's values make from our exports is marked now.
//   The repairs only add listeners to promises that Cap'n Web itself creates, so whoever
//   waits on them still sees their outcome. (A peer's "abort" is kept from Cap'n Web
//   altogether: see sessions.ts.)
//
// This module runs in Node and Bun only (the browser client does not import it).
import { RpcSession, RpcStub, type RpcTransport } from "capnweb";

/** Cap'n Web's StubHook, as the bridge uses it (capnweb src/core.ts). */
export interface StubHook {
  call(path: PropertyPath, args: RpcPayload): StubHook;
  get(path: PropertyPath): StubHook;
  map(path: PropertyPath, captures: StubHook[], instructions: unknown[]): StubHook;
  pull(): RpcPayload | Promise<RpcPayload>;
  dup(): StubHook;
  dispose(): void;
  ignoreUnhandledRejections(): void;
  onBroken(callback: (error: unknown) => void): void;
}
export type PropertyPath = (string | number)[];
/** A message's payload (capnweb's RpcPayload): handed from one hook to another, never opened here. */
export type RpcPayload = object & { readonly __capnwebPayload?: never };

function changed(what: string): Error {
  return new Error(`The installed capnweb does not have the internals @redwoodjs/open-do relies on (${what}); use capnweb 0.12.`);
}

/** The symbol under which a stub (a Proxy) keeps its record `{ hook, pathIfPromise }`. */
const RAW: symbol = (() => {
  let found: symbol | undefined;
  // dup() reads this[RAW] first: a stand-in `this` reports the key it was asked for.
  const spy = new Proxy(
    {},
    {
      get(_target, key) {
        if (typeof key === "symbol") found = key;
        return { hook: { dup: () => undefined } };
      },
    },
  );
  try {
    (RpcStub.prototype as unknown as { dup(this: unknown): unknown }).dup.call(spy);
  } catch {
    // reported below
  }
  if (found === undefined) throw changed("RpcStub's record");
  return found;
})();

/** The hook a Cap'n Web stub or RpcPromise carries, with the path of an RpcPromise. */
export function unwrap(stub: object): { hook: StubHook; pathIfPromise?: PropertyPath } {
  return (stub as Record<symbol, { hook: StubHook; pathIfPromise?: PropertyPath }>)[RAW]!;
}

/** The hook Cap'n Web makes for a local function: it delivers a call's arguments (pipelined promises resolved) and wraps its result. */
export function functionHook(fn: (...args: unknown[]) => unknown): StubHook {
  return unwrap(new RpcStub(fn)).hook;
}

/** StubHook itself, to extend (Cap'n Web checks `instanceof StubHook`); a subclass implements StubHook. */
export const StubHookBase: abstract new () => object = (() => {
  const hook = functionHook(() => {});
  let proto = Object.getPrototypeOf(hook);
  while (proto !== null && Object.getPrototypeOf(proto) !== Object.prototype) proto = Object.getPrototypeOf(proto);
  for (const method of ["call", "get", "pull", "dup", "dispose", "ignoreUnhandledRejections"]) {
    if (typeof (hook as unknown as Record<string, unknown>)[method] !== "function") throw changed(`StubHook.${method}`);
  }
  if (typeof proto?.constructor !== "function" || typeof proto.stream !== "function") throw changed("StubHook");
  return proto.constructor;
})();

// ---- the repairs ------------------------------------------------------------------------

interface ImportTableEntry {
  activePull?: { promise: Promise<unknown> };
  session: SessionTables;
  abort(error: unknown): void;
  resolve(resolution: StubHook): void;
}

/** A session's tables: imports (what it waits for from its peer) and exports (what it serves). */
interface SessionTables {
  imports: ImportTableEntry[];
  /** An export made by a "pipe" message has `pipeReadable`: its writable end is the peer's to write. */
  exports: ({ hook: StubHook; pipeReadable?: ReadableStream } | undefined)[];
}

function tables(session: RpcSession): SessionTables {
  return (unwrap(session.getRemoteMain() as object).hook as unknown as { entry: ImportTableEntry }).entry.session;
}

/**
 * Fails everything `session` waits for from its peer with `error` — calls it made, promises
 * the peer passed, streams the peer was to write (they end with an error) — while what the
 * peer asked of us carries on: for a peer that will send nothing more, as an HTTP batch
 * client once its batch is read.
 */
export function failWaitsOnPeer(session: RpcSession, error: Error): void {
  const { imports, exports } = tables(session);
  for (const entry of Object.values(imports)) entry.abort(error);
  for (const entry of Object.values(exports)) {
    if (entry === undefined || !("pipeReadable" in entry)) continue;
    // A write in flight into a pipe nobody reads holds up an abort of its writable end (the
    // streams standard waits for it): cancelling the readable end, when no one took it,
    // ends both.
    entry.pipeReadable?.cancel(error).catch(ignore);
    entry.hook.dispose();
  }
}

(() => {
  // A session's main import is an ImportTableEntry; this session reads nothing, ever.
  const idle: RpcTransport = { send() {}, receive: () => new Promise<string>(() => {}) };
  const main = new RpcSession(idle).getRemoteMain() as object;
  const entry = (unwrap(main).hook as unknown as { entry?: ImportTableEntry }).entry;
  const proto = entry === undefined ? undefined : (Object.getPrototypeOf(entry) as ImportTableEntry);
  if (proto === undefined || typeof proto.abort !== "function" || typeof proto.resolve !== "function" || !("activePull" in entry!) || !Array.isArray(entry!.session?.imports) || !Array.isArray(entry!.session?.exports)) {
    throw changed("ImportTableEntry");
  }
  const session = Object.getPrototypeOf(entry!.session) as { exportStub?(hook: StubHook): number; getExport?(id: number): StubHook | undefined };
  if (typeof session.exportStub !== "function") throw changed("RpcSessionImpl.exportStub");
  if (typeof session.getExport !== "function") throw changed("RpcSessionImpl.getExport");
  const { exportStub, getExport } = session;
  // A message's values reach our exports through getExport(), and make their calls, reads,
  // maps and references on what it returns.
  session.getExport = function (this: unknown, id: number) {
    const hook = getExport.call(this, id);
    return hook === undefined ? undefined : marking(hook);
  };
  session.exportStub = function (this: unknown, hook: StubHook) {
    hook.ignoreUnhandledRejections();
    return exportStub.call(this, hook);
  };
  const { abort, resolve } = proto;
  proto.abort = function (this: ImportTableEntry, error: unknown) {
    this.activePull?.promise.catch(ignore);
    return abort.call(this, error);
  };
  proto.resolve = function (this: ImportTableEntry, resolution: StubHook) {
    resolution.ignoreUnhandledRejections();
    return resolve.call(this, resolution);
  };
})();

function ignore(): void {}

/** `hook`, whose calls, reads, maps and dups give hooks marked as a push's are. */
function marking(hook: StubHook): StubHook {
  return new Proxy(hook, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      if (key === "call" || key === "get" || key === "map" || key === "dup") {
        return (...args: unknown[]) => {
          const made = (value as (...a: unknown[]) => StubHook).apply(target, args);
          made.ignoreUnhandledRejections();
          return made;
        };
      }
      return value.bind(target);
    },
  });
}
