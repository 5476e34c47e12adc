// Test helpers in the shape of Cloudflare's `cloudflare:test` module.
import type { DurableObjectId, DurableObjectNamespace } from "./namespace.js";
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

/**
 * Runs the alarm of the object behind `stub` now, if one is set, and removes it (it is not
 * run again at its time): true when an alarm ran. `alarm()` runs as one of the object's
 * events, with `{ retryCount: 0, isRetry: false }`; what it throws reaches the caller, and
 * is not retried. For tests that should not wait for alarms (vitest-pool-workers' helper).
 */
export function runDurableObjectAlarm<O extends object>(stub: DurableObjectStub<O>): Promise<boolean> {
  return runInDurableObject(stub, async (instance, state) => {
    if ((await state.storage.getAlarm()) === null) return false;
    await state.storage.deleteAlarm();
    const alarm = (instance as { alarm?: (info: { retryCount: number; isRetry: boolean }) => unknown }).alarm;
    await alarm?.call(instance, { retryCount: 0, isRetry: false });
    return true;
  });
}

/**
 * The ids of the namespace's objects that have stored something (a database file under
 * dataDir, or in-memory storage with data), sorted by their hex (vitest-pool-workers'
 * helper). Ids come without names: `id.name` is undefined.
 */
export async function listDurableObjectIds(namespace: DurableObjectNamespace): Promise<DurableObjectId[]> {
  return namespace._storedIds();
}
