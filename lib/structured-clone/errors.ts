// DataCloneError and the V8-style descriptions used in its messages.
//
// Which class is thrown: V8 itself, and therefore workerd and Node's
// `structuredClone`, report clone failures as a `DOMException` whose name is
// "DataCloneError" (code 25). Node 22+ and Bun both have a global
// `DOMException`, so that is what we throw, to behave like workerd's
// `storage.put()`. Only where no `DOMException` exists do we fall back to our
// own `DataCloneError` class. Either way callers can test
// `err.name === "DataCloneError"`, and `err instanceof DataCloneError` is true
// for both, thanks to `DataCloneError[Symbol.hasInstance]` below.

import { types } from "node:util";

/** Error thrown when a value cannot be serialized or bytes cannot be deserialized. */
export class DataCloneError extends Error {
  constructor(message = "") {
    super(message);
  }

  /**
   * `instanceof DataCloneError` also accepts the `DOMException` we really
   * throw, so both ways of checking the error work on every runtime.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    return (
      this === DataCloneError &&
      DOMExceptionCtor !== undefined &&
      value instanceof DOMExceptionCtor &&
      (value as { name?: unknown }).name === "DataCloneError"
    );
  }
}
// Like the built-in errors, keep `name` on the prototype and non-enumerable.
Object.defineProperty(DataCloneError.prototype, "name", {
  value: "DataCloneError",
  writable: true,
  enumerable: false,
  configurable: true,
});

const DOMExceptionCtor: (new (message?: string, name?: string) => Error) | undefined =
  (globalThis as { DOMException?: new (message?: string, name?: string) => Error }).DOMException;

/** Builds the error to throw: a DOMException("DataCloneError") where available. */
export function cloneError(message: string): Error {
  return DOMExceptionCtor !== undefined
    ? new DOMExceptionCtor(message, "DataCloneError")
    : new DataCloneError(message);
}

/** V8's MessageTemplate::kDataCloneError: "% could not be cloned." */
export function notCloneable(value: unknown): Error {
  return cloneError(`${describe(value)} could not be cloned.`);
}

// V8's kDataCloneErrorDetachedArrayBuffer.
export const DETACHED_MESSAGE = "An ArrayBuffer is detached and could not be cloned.";
// V8's kDataCloneDeserializationError / kDataCloneDeserializationVersionError.
export const DESERIALIZE_MESSAGE = "Unable to deserialize cloned data.";
export const VERSION_MESSAGE =
  "Unable to deserialize cloned data due to invalid or unsupported version.";

const ObjectProtoToString = Object.prototype.toString;
const FunctionProtoToString = Function.prototype.toString;
const SymbolProtoToString = Symbol.prototype.toString;

/**
 * Reads a property the way V8's JSReceiver::GetDataProperty does: walks the
 * prototype chain and returns a data property's value, but never runs a
 * getter (an accessor yields undefined).
 */
function getDataProperty(object: object, key: PropertyKey): unknown {
  for (let o: object | null = object; o !== null; o = Object.getPrototypeOf(o)) {
    const desc = Object.getOwnPropertyDescriptor(o, key);
    if (desc !== undefined) return "value" in desc ? desc.value : undefined;
  }
  return undefined;
}

/**
 * Approximates V8's Object::NoSideEffectsToString, which formats the value in
 * a DataCloneError message: a function's source text, "Symbol(desc)",
 * "#<Constructor>" for objects that use Object.prototype.toString and have a
 * named constructor, and "[object Tag]" otherwise (generators, iterators,
 * Symbol wrappers).
 */
export function describe(value: unknown): string {
  try {
    if (typeof value === "function") return FunctionProtoToString.call(value);
    if (typeof value === "symbol") return SymbolProtoToString.call(value);
    if (typeof value !== "object" || value === null) return String(value);
    // V8 describes a proxy without running its traps: "[object Array]" for
    // a proxy of an array, "#<Object>" otherwise. (Array.isArray runs no trap.)
    if (types.isProxy(value)) return Array.isArray(value) ? "[object Array]" : "#<Object>";
    if (getDataProperty(value, "toString") === ObjectProtoToString) {
      const ctor = getDataProperty(value, "constructor");
      if (typeof ctor === "function") {
        const name = getDataProperty(ctor, "name");
        if (typeof name === "string" && name.length > 0) return `#<${name}>`;
      }
    }
    const tag = getDataProperty(value, Symbol.toStringTag);
    if (typeof tag === "string") return `[object ${tag}]`;
    return ObjectProtoToString.call(value);
  } catch {
    return "[object Object]";
  }
}
