// Test helpers in the shape of Cloudflare's `cloudflare:test` module.
import type { DurableObjectState } from "./state.js";
import type { DurableObjectStub } from "./stub.js";

/**
 * Runs `callback` inside the object behind `stub`, as one of its events (constructed
 * first if needed, delivered in order with its other events, held by the output gate).
 * Errors from the callback reach the caller unchanged.
 */
export function runInDurableObject<O extends object, R>(
  stub: DurableObjectStub<O>,
  callback: (instance: O, state: DurableObjectState) => R | Promise<R>,
): Promise<R> {
  return stub._runtime().run(callback as (instance: object, state: DurableObjectState) => R | Promise<R>);
}
