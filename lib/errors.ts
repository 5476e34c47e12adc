// Errors as a caller on the other side of a stub sees them.

/**
 * The error a stub's caller receives when the object threw `e`: a copy that keeps the
 * class and message (not the stack, which belongs to the object's side), marked
 * `remote = true` as Cloudflare marks errors thrown by the object's code.
 */
export function remoteError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const Ctor = STANDARD_ERRORS.find((C) => e.constructor === C) ?? Error;
  const copy = new Ctor(e.message) as Error & { remote?: boolean };
  if (copy.name !== e.name) copy.name = e.name;
  copy.remote = true;
  return copy;
}

const STANDARD_ERRORS: ErrorConstructor[] = [
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
];

/** Errors the runtime itself raises (resets, overload): callers get them as they are. */
const RUNTIME_ERRORS = new WeakSet<object>();

/** An error of the runtime's own, with Cloudflare's marker properties. */
export function runtimeError(message: string, marks: { overloaded?: boolean; durableObjectReset?: boolean } = {}): Error {
  const error = Object.assign(new Error(message), marks);
  RUNTIME_ERRORS.add(error);
  return error;
}

/** What the caller of an event sees when it failed with `e`. */
export function callerError(e: unknown, remote: boolean): unknown {
  if (!remote || (typeof e === "object" && e !== null && RUNTIME_ERRORS.has(e))) return e;
  return remoteError(e);
}

export const OVERLOADED_QUEUE = "Durable Object is overloaded. Too many requests queued.";
export const BLOCK_CONCURRENCY_TIMEOUT =
  "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.";
export const ABORTED = "Application called abort() to reset Durable Object.";

/** Cloudflare's words when a code update resets objects (`.durableObjectReset`). */
export const CODE_UPDATED = "Durable Object reset because its code was updated.";
