// One live object: its instance (constructed lazily, again after a reset), its storage,
// and the delivery of events to it.
//
// Until the Rust scheduler lands (issue #3), events to one object are delivered one at a
// time in arrival order: the next starts when the previous handler has finished. A
// handler's result is released to its caller only when every write issued before it is
// durable (the output gate, see commits.ts).
import { Commits } from "./commits.js";
import { remoteError } from "./errors.js";
import type { DurableObjectId } from "./namespace.js";
import { native } from "./native.js";
import { DurableObjectState, type StateHost } from "./state.js";
import { DurableObjectStorage } from "./storage.js";

export type ObjectClass = new (ctx: DurableObjectState, env: any) => object;

const noop = () => {};

export class ObjectRuntime implements StateHost {
  readonly handle: number;
  readonly commits: Commits;
  readonly storage: DurableObjectStorage;
  readonly #id: DurableObjectId;
  readonly #Class: ObjectClass;
  readonly #env: unknown;
  #instance: object | undefined;
  #state: DurableObjectState | undefined;
  /** An event's handler is running; others wait in `#queue`. */
  #running = false;
  readonly #queue: { start: () => void; fail: (error: unknown) => void }[] = [];
  /** An open blockConcurrencyWhile(): events wait for it. */
  #blocked: Promise<unknown> | undefined;
  readonly #waitUntil = new Set<Promise<unknown>>();

  constructor(id: DurableObjectId, handle: number, Class: ObjectClass, env: unknown) {
    this.#id = id;
    this.handle = handle;
    this.#Class = Class;
    this.#env = env;
    this.commits = new Commits(handle, (error) => this.reset(error));
    this.storage = new DurableObjectStorage(handle, this.commits);
  }

  fetch(request: Request): Promise<Response> {
    return this.#deliver((instance) => {
      const handler = (instance as { fetch?: (r: Request) => unknown }).fetch;
      if (typeof handler !== "function") throw new TypeError("Handler does not export a fetch() function.");
      return Promise.resolve(handler.call(instance, request)).then((response) => {
        if (!(response instanceof Response)) {
          throw new TypeError("Incorrect type for Promise: the Promise did not resolve to 'Response'.");
        }
        return response;
      });
    }, true);
  }

  /** Runs `callback` as an event of this object (see testing.ts). */
  run<T>(callback: (instance: object, state: DurableObjectState) => T | Promise<T>): Promise<T> {
    return this.#deliver((instance) => callback(instance, this.#state!), false);
  }

  /**
   * Delivers an event: at once when the object is idle (no promise hops on the fast
   * path), else after the events before it. Its result goes to the caller once the
   * writes issued before it are durable. Errors are copied as a remote caller sees them
   * when `remote`.
   */
  #deliver<T>(handler: (instance: object) => T | Promise<T>, remote: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => this.#start(handler, remote, resolve, reject);
      if (this.#running || this.#blocked !== undefined) {
        this.#queue.push({ start, fail: (error) => reject(remote ? remoteError(error) : error) });
      } else {
        start();
      }
    });
  }

  #start<T>(handler: (instance: object) => T | Promise<T>, remote: boolean, resolve: (v: T) => void, reject: (e: unknown) => void): void {
    this.#running = true;
    const finish = (ok: boolean, value: unknown) => {
      // Outputs wait for the writes issued before them; the next event need not.
      const gate = this.commits.whenDurable();
      this.#running = false;
      this.#next();
      const settle = () => (ok ? resolve(value as T) : reject(remote ? remoteError(value) : value));
      if (gate === undefined) settle();
      else gate.then(settle, reject);
    };
    let result: T | Promise<T>;
    try {
      const instance = this.#activate();
      // A constructor that called blockConcurrencyWhile() holds this event back too.
      const blocked = this.#blocked;
      result = blocked === undefined ? handler(instance) : blocked.then(() => handler(this.#activate()));
    } catch (error) {
      finish(false, error);
      return;
    }
    if (result instanceof Promise) result.then((v) => finish(true, v), (e) => finish(false, e));
    else finish(true, result);
  }

  /** Starts the next queued event, unless a critical section holds them back. */
  #next(): void {
    if (this.#running || this.#blocked !== undefined) return;
    this.#queue.shift()?.start();
  }

  #activate(): object {
    if (this.#instance === undefined) {
      this.commits.repair();
      const state = new DurableObjectState(this.#id, this);
      this.#instance = new this.#Class(state, this.#env);
      this.#state = state;
    }
    return this.#instance;
  }

  waitUntil(promise: Promise<unknown>): void {
    const p = Promise.resolve(promise).then(noop, noop);
    this.#waitUntil.add(p);
    p.then(() => this.#waitUntil.delete(p));
  }

  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T> {
    const run = (async () => callback())();
    const blocked = run.then(
      () => {
        if (this.#blocked === blocked) this.#blocked = undefined;
        this.#next();
      },
      (error) => {
        if (this.#blocked === blocked) this.#blocked = undefined;
        // A failed critical section resets the object; the events that waited for it fail.
        this.reset(error);
        for (const waiting of this.#queue.splice(0)) waiting.fail(error);
        throw error;
      },
    );
    this.#blocked = blocked;
    return run;
  }

  /** Drops the instance and its uncommitted writes; the next event constructs anew. */
  reset(reason: unknown): void {
    this.#instance = undefined;
    this.#state = undefined;
    this.commits.discard(reason);
  }

  /** Set once close() has begun: the registry is shutting down. */
  closed = false;

  /** Commits, waits for durability and in-flight work, and closes the object's storage. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.#running || this.#queue.length > 0 || this.#blocked !== undefined) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(this.#waitUntil);
    this.commits.commit();
    const gate = this.commits.whenDurable();
    if (gate !== undefined) await gate.catch(noop);
    native.storageClose(this.handle);
  }
}
