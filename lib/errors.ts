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
