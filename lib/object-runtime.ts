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

type Outcome<T> = { ok: true; value: T; gate: Promise<void> | undefined } | { ok: false; error: unknown; gate: Promise<void> | undefined };

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
  /** Settles when the previous event's handler has finished. */
  #tail: Promise<void> = Promise.resolve();
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
    return this.#deliver(async (instance) => {
      const handler = (instance as { fetch?: (r: Request) => unknown }).fetch;
      if (typeof handler !== "function") throw new TypeError("Handler does not export a fetch() function.");
      const response = await handler.call(instance, request);
      if (!(response instanceof Response)) {
        throw new TypeError("Incorrect type for Promise: the Promise did not resolve to 'Response'.");
      }
      return response;
    });
  }

  /** Runs `callback` as an event of this object (see testing.ts). */
  run<T>(callback: (instance: object, state: DurableObjectState) => T | Promise<T>): Promise<T> {
    return this.#deliver(async (instance) => callback(instance, this.#state!), false);
  }

  #deliver<T>(handler: (instance: object) => Promise<T>, remote = true): Promise<T> {
    const ran = this.#tail.then(() => this.#run(handler, remote));
    this.#tail = ran.then(noop, noop);
    return ran.then(async (outcome) => {
      if (outcome.gate !== undefined) await outcome.gate;
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    });
  }

  async #run<T>(handler: (instance: object) => Promise<T>, remote: boolean): Promise<Outcome<T>> {
    try {
      await this.#unblocked();
      const instance = this.#activate();
      await this.#unblocked(); // a constructor may have called blockConcurrencyWhile()
      const value = await handler(instance);
      return { ok: true, value, gate: this.commits.whenDurable() };
    } catch (error) {
      return { ok: false, error: remote ? remoteError(error) : error, gate: this.commits.whenDurable() };
    }
  }

  async #unblocked(): Promise<void> {
    while (this.#blocked !== undefined) await this.#blocked;
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
      },
      (error) => {
        if (this.#blocked === blocked) this.#blocked = undefined;
        // A failed critical section resets the object; events that waited for it fail.
        this.reset(error);
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

  /** Commits, waits for durability and in-flight work, and closes the object's storage. */
  async close(): Promise<void> {
    await this.#tail;
    await Promise.all(this.#waitUntil);
    this.commits.commit();
    const gate = this.commits.whenDurable();
    if (gate !== undefined) await gate.catch(noop);
    native.storageClose(this.handle);
  }
}
