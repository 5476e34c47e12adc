// Copying values across an RPC boundary, with Cloudflare's rules (§2.15).
//
// Data is copied as structured clone copies it (cycles and shared references kept);
// functions and RpcTarget instances travel by reference, as stubs that call back; stubs are
// forwarded as duplicates. Instances of other classes, null-prototype objects, promises
// nested in a value, and symbols cannot cross (DataCloneError). Request, Response,
// Headers and streams move to the receiver as they are.
import { DurableObjectStub } from "../stub.js";
import { Capability, HOOK, PROPERTY, RpcPromise, disposeSymbol, hookOf, makeStub, type Hook } from "./client.js";
import { notSerializable } from "./errors.js";
import { RpcTarget } from "./target.js";
import { cloneError } from "../structured-clone/errors.js";

const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array);
const NodeBuffer = (globalThis as { Buffer?: { isBuffer(value: unknown): boolean } }).Buffer;
const ERRORS = new Set<Function>([Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]);
/** Host objects that move to the receiver untouched (ownership of bodies moves with them). */
const MOVED: Function[] = [Request, Response, Headers, ReadableStream, WritableStream, TransformStream, Blob].filter(
  (C) => typeof C === "function",
);

/**
 * Before compat date 2026-01-20 (rpc_params_dup_stubs) a stub passed as an argument is
 * transferred: the receiver gets it and the caller's stub is disposed. Set by the Registry.
 */
let transferArgumentStubs = false;

/** @internal */
export function setArgumentStubTransfer(transfer: boolean): void {
  transferArgumentStubs = transfer;
}

/** Workerd's limit on one call's serialized arguments, or its result (MAX_JS_RPC_MESSAGE_SIZE). */
export const MAX_RPC_MESSAGE_BYTES = 32 * 1024 * 1024;
/** Strings at least this long are measured exactly (one or two bytes a character) near the limit. */
const LONG_STRING = 64 * 1024;

/**
 * What V8's serializer would write for the values copied, estimated as they are copied
 * (nothing is serialized in one process): the bytes of strings and buffers, which are
 * what can reach the limit, plus a few bytes of tags per value. Strings count one byte a
 * character, as V8 writes Latin-1 text; only when the total nears the limit are long
 * strings checked for the characters that take two.
 */
class MessageSize {
  bytes = 0;
  readonly #long: string[] = [];

  string(s: string): void {
    this.bytes += s.length + 2;
    if (s.length >= LONG_STRING) this.#long.push(s);
  }

  /** Throws workerd's error when the message is over the limit. */
  check(): void {
    if (this.bytes > MAX_RPC_MESSAGE_BYTES / 2) {
      for (const s of this.#long) if (/[^\u0000-\u00ff]/.test(s)) this.bytes += s.length;
      this.#long.length = 0;
    }
    if (this.bytes > MAX_RPC_MESSAGE_BYTES) {
      throw new Error(`Serialized RPC arguments or return values are limited to 32MiB, but the size of this value was: ${this.bytes} bytes.`);
    }
  }
}

class Copier {
  readonly seen = new Map<object, unknown>();
  readonly size = new MessageSize();
  /** Stubs made for the receiver (disposed with the call, or with the result). */
  readonly created: Hook[] = [];
  /** The caller's stubs that this copy transfers (disposed once copied). */
  readonly transferred: Hook[] = [];
  readonly #transfer: boolean;

  constructor(transfer = false) {
    this.#transfer = transfer;
  }

  copy(value: unknown): unknown {
    switch (typeof value) {
      case "string":
        this.size.string(value);
        return value;
      case "undefined":
      case "boolean":
      case "number":
      case "bigint":
        this.size.bytes += 9;
        return value;
      case "symbol":
        throw cloneError(`${String(value)} could not be cloned.`);
      case "function":
        return this.#reference(value);
    }
    if (value === null) return null;
    const known = this.seen.get(value as object);
    if (known !== undefined) return known;
    return this.#object(value as object);
  }

  #keep<T>(original: object, copy: T): T {
    this.seen.set(original, copy);
    return copy;
  }

  #reference(value: object): unknown {
    if ((value as Record<symbol, unknown>)[PROPERTY] !== undefined) throw notSerializable("JsRpcProperty");
    const existing = hookOf(value);
    const hook = existing !== undefined ? existing.dup() : new Capability(value).hook();
    if (existing !== undefined && this.#transfer) this.transferred.push(existing);
    this.created.push(hook);
    return this.#keep(value, makeStub(hook));
  }

  #object(value: object): unknown {
    const proto = Object.getPrototypeOf(value);
    this.size.bytes += 4;
    if (proto === Object.prototype) {
      const copy: Record<string, unknown> = this.#keep(value, {});
      for (const key of Object.keys(value)) {
        this.size.string(key);
        copy[key] = this.copy((value as Record<string, unknown>)[key]);
      }
      return copy;
    }
    if (Array.isArray(value)) {
      const copy: unknown[] = this.#keep(value, new Array(value.length));
      for (let i = 0; i < value.length; i++) if (i in value) copy[i] = this.copy(value[i]);
      return copy;
    }
    if (value instanceof RpcTarget || (value as Record<symbol, unknown>)[HOOK] !== undefined) return this.#reference(value);
    if (value instanceof RpcPromise) throw notSerializable("JsRpcPromise");
    if (value instanceof DurableObjectStub) return value;
    if (value instanceof Date) return this.#keep(value, new Date(value.getTime()));
    if (value instanceof RegExp) return this.#keep(value, new RegExp(value.source, value.flags));
    if (value instanceof Map) {
      const copy = this.#keep(value, new Map());
      for (const [k, v] of value) copy.set(this.copy(k), this.copy(v));
      return copy;
    }
    if (value instanceof Set) {
      const copy = this.#keep(value, new Set());
      for (const v of value) copy.add(this.copy(v));
      return copy;
    }
    if (value instanceof ArrayBuffer) {
      this.size.bytes += value.byteLength;
      return this.#keep(value, value.slice(0));
    }
    if (value instanceof TYPED_ARRAY || value instanceof DataView) {
      const view = value as ArrayBufferView;
      const buffer = this.copy(view.buffer) as ArrayBuffer;
      // A Node Buffer arrives as a Uint8Array, as structured clone gives it (and Buffer's own
      // constructor is deprecated: calling it printed a DeprecationWarning).
      const Ctor = (NodeBuffer?.isBuffer(value) ? Uint8Array : value.constructor) as new (b: ArrayBuffer, o: number, l: number) => unknown;
      const length = value instanceof DataView ? value.byteLength : (value as unknown as { length: number }).length;
      return this.#keep(value, new Ctor(buffer, view.byteOffset, length));
    }
    if (value instanceof Error && ERRORS.has(value.constructor)) {
      const copy = new (value.constructor as ErrorConstructor)(value.message);
      if (copy.name !== value.name) copy.name = value.name;
      return this.#keep(value, copy);
    }
    if (value instanceof Boolean || value instanceof Number || value instanceof String || value instanceof BigInt) {
      return this.#keep(value, Object(value.valueOf()));
    }
    if (MOVED.some((C) => value instanceof C)) return value;
    if (value instanceof Promise) throw notSerializable("Promise");
    const name = proto === null ? "Object" : (proto.constructor?.name ?? "Object");
    throw notSerializable(name);
  }
}

/** Arguments of a call, copied for the receiver. */
export function copyArgs(args: unknown[]): { values: unknown[]; created: Hook[] } {
  if (args.length === 0) return { values: args, created: [] };
  const copier = new Copier(transferArgumentStubs);
  const values = args.map((a) => copier.copy(a));
  try {
    copier.size.check();
  } catch (error) {
    disposeAll(copier.created);
    throw error;
  }
  disposeAll(copier.transferred);
  return { values, created: copier.created };
}

/**
 * The result of a call, copied for the caller. A returned object gets a
 * `[Symbol.dispose]()` that disposes the stubs inside it.
 */
export function copyResult(value: unknown): unknown {
  if (typeof value === "string" && value.length > MAX_RPC_MESSAGE_BYTES / 2) {
    const size = new MessageSize();
    size.string(value);
    size.check();
  }
  if (typeof value !== "object" && typeof value !== "function" && typeof value !== "symbol") return value;
  if (value === null) return null;
  const copier = new Copier();
  const copy = copier.copy(value);
  try {
    copier.size.check();
  } catch (error) {
    disposeAll(copier.created);
    throw error;
  }
  if (typeof copy === "object" && copy !== null && hookOf(copy) === undefined && !(copy instanceof DurableObjectStub)) {
    const created = copier.created;
    Object.defineProperty(copy, disposeSymbol, { value: () => disposeAll(created), configurable: true });
  }
  return copy;
}

export function disposeAll(hooks: Hook[]): void {
  for (const hook of hooks) hook.dispose();
}
