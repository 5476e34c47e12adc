// `ctx`: the DurableObjectState handed to an object's constructor.
import type { DurableObjectId } from "./namespace.js";
import type { DurableObjectStorage } from "./storage.js";

/** What the runtime behind a state provides (see object-runtime.ts). */
export interface StateHost {
  readonly storage: DurableObjectStorage;
  waitUntil(promise: Promise<unknown>): void;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  abort(reason?: unknown, options?: { retryAlarm?: boolean }): never;
}

export class DurableObjectState {
  readonly #host: StateHost;
  readonly id: DurableObjectId;

  /** @internal */
  constructor(id: DurableObjectId, host: StateHost) {
    this.id = id;
    this.#host = host;
  }

  get storage(): DurableObjectStorage {
    return this.#host.storage;
  }

  /** Keeps the object alive until `promise` settles; does not delay the response. */
  waitUntil(promise: Promise<unknown>): void {
    this.#host.waitUntil(promise);
  }

  /**
   * Runs `callback` while no other event is delivered to the object. If it throws, the
   * object is reset.
   */
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T> {
    return this.#host.blockConcurrencyWhile(callback);
  }

  /**
   * Resets the object at once: uncommitted writes are dropped, calls in flight fail with
   * `reason` (default "Application called abort() to reset Durable Object."), and this
   * call throws so that the code after it does not run. The next event constructs anew.
   */
  abort(reason?: string, options?: { retryAlarm?: boolean }): never {
    return this.#host.abort(reason, options);
  }
}
