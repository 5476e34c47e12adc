// One live object: its instance (constructed lazily, again after a reset), its storage,
// and the delivery of events to it.
//
// When an event may start is the mailbox's decision (src/engine/actor/mailbox.rs, with
// Cloudflare's input-gate rules); this file keeps what each event does and runs it. An
// idle object runs an event at once (in a microtask, so the call is still asynchronous
// for its caller). A busy one queues it; queued events
// start one per turn of the event loop (a "delivery point"), so they interleave with a
// running event only while it awaits something other than storage, never while a critical
// section (blockConcurrencyWhile, storage.transaction) is open. A handler's result is
// released to its caller only when every write issued before it is durable (the output
// gate, see commits.ts).
import { AlarmRuns, type AlarmLimits } from "./alarm-runs.js";
import { Commits, ObjectSyncs } from "./commits.js";
import { ABORTED, BLOCK_CONCURRENCY_TIMEOUT, OVERLOADED_QUEUE, callerError, runtimeError } from "./errors.js";
import { valueEncoder, type StoredErrorFormat } from "./kv-codec.js";
import { DurableObjectNamespace, type DurableObjectId } from "./namespace.js";
import { native } from "./native.js";
import { DurableObjectState, type StateHost } from "./state.js";
import { DurableObjectStorage } from "./storage.js";
import type { ValueEncoder } from "./structured-clone.js";
import { WebSocket } from "./websocket.js";
import type { StorageHost } from "./transaction.js";
import { copyResult } from "./rpc/copy.js";
import { noRpcSupport } from "./rpc/errors.js";
import { invoke, resolve } from "./rpc/path.js";
import { delivered, ObjectSockets, type HibernationHost, type HibernationRecord } from "./object-sockets.js";

export type ObjectClass = new (ctx: DurableObjectState, env: any) => object;

/** How a Registry tunes its objects. */
export interface RuntimeLimits extends AlarmLimits {
  /** Waiting events per object before calls fail as overloaded. */
  maxQueuedEvents: number;
  /** ms a blockConcurrencyWhile() callback may run before the object is reset. */
  blockConcurrencyWhileTimeout: number;
  /** deleteAll() deletes the alarm too (compat flag delete_all_deletes_alarm, 2026-02-24). */
  deleteAllDeletesAlarm: boolean;
  /** How stored Errors are written (compat flag enhanced_error_serialization, 2026-04-21). */
  storedErrors: StoredErrorFormat;
  /** What ctx.exports returns (undefined: not enabled). */
  exports: Record<string, unknown> | undefined;
}


interface Event {
  handler: (instance: object) => unknown;
  /** The caller is on the other side of a stub: errors are copied as remote ones. */
  remote: boolean;
  resolve: (value: any) => void;
  reject: (error: unknown) => void;
}

// mailboxOffer outcomes.
const START = 0;
const WAIT_AND_SCHEDULE = 2;
const OVERLOADED = 3;

let lastToken = 0;
/** Event tokens: below 2^31 (the mailbox packs a flag next to them). */
function nextToken(): number {
  lastToken = lastToken >= 0x7fffffff ? 1 : lastToken + 1;
  return lastToken;
}

const noop = () => {};

/** Cloudflare's cap on how long waitUntil() keeps an object alive. */
const WAIT_UNTIL_LIMIT_MS = 15 * 60 * 1000;

/** What the registry gives an object for its WebSockets. */
export interface SocketSetup {
  /** What hibernation kept of this object's sockets, if it ever had any. */
  record: HibernationRecord | undefined;
  /** Creates the object's record and group (this object owning it) and returns it. */
  register: () => HibernationRecord;
}

export class ObjectRuntime implements StateHost, StorageHost, HibernationHost {
  /** The storage handle of the current instance (a reset issues a new one, see reset()). */
  handle: number;
  readonly mailbox: number;
  commits: Commits;
  /** The fsyncs of the object's database, shared by the Commits of its instances. */
  readonly syncs: ObjectSyncs;
  storage: DurableObjectStorage;
  readonly #id: DurableObjectId;
  readonly #Class: ObjectClass;
  readonly #env: unknown;
  readonly #limits: RuntimeLimits;
  #instance: object | undefined;
  #state: DurableObjectState | undefined;
  /** Queued events, by token. */
  readonly #waiting = new Map<number, Event>();
  /** Started events whose handlers have not settled. */
  readonly #running = new Set<Event>();
  /** Bumped by every reset: work of an older instance no longer counts. */
  #generation = 0;
  /** Set while the constructor runs. */
  #constructing = false;
  /** A blockConcurrencyWhile() the constructor opened: the event that constructed waits for it too. */
  #constructorSection: Promise<unknown> | undefined;
  readonly #waitUntil = new Set<Promise<unknown>>();

  readonly #rpc: boolean;
  readonly alarms: AlarmRuns;
  #alarmLoaded = false;
  readonly sockets: ObjectSockets;
  readonly sqlBacked: boolean;
  /** Open standard-API (accept()) sockets of this object: they keep it in memory. */
  #standardSockets = 0;

  constructor(
    id: DurableObjectId,
    handle: number,
    Class: ObjectClass,
    env: unknown,
    limits: RuntimeLimits,
    rpc: boolean,
    scheduleAlarm: (atMs: number | null) => void,
    sockets: SocketSetup,
    sqlBacked = true,
  ) {
    this.sqlBacked = sqlBacked;
    this.#rpc = rpc;
    this.alarms = new AlarmRuns(this, limits, scheduleAlarm);
    this.#id = id;
    this.handle = handle;
    this.#Class = Class;
    this.#env = env;
    this.#limits = limits;
    this.mailbox = native.mailboxOpen(limits.maxQueuedEvents);
    this.syncs = new ObjectSyncs(handle);
    this.commits = new Commits(this.syncs, (error) => this.reset(error));
    this.storage = new DurableObjectStorage(handle, this.commits, this);
    this.sockets = new ObjectSockets(sockets.record, { whenDurable: () => this.commits.whenDurable() }, sockets.register);
  }

  fetch(request: Request): Promise<Response> {
    return this.#deliver((instance) => {
      const handler = (instance as { fetch?: (r: Request) => unknown }).fetch;
      if (typeof handler !== "function") throw new TypeError("Handler does not export a fetch() function.");
      return Promise.resolve(handler.call(instance, request)).then((response) => {
        if (!(response instanceof Response)) {
          throw new TypeError("Incorrect type for Promise: the Promise did not resolve to 'Response'.");
        }
        const ws = (response as { webSocket?: WebSocket | null }).webSocket;
        if (ws instanceof WebSocket) this.#ownsSocket(ws);
        return response;
      });
    }, true);
  }

  /** The object returned one end of a pair: the other end is this object's. */
  #ownsSocket(returned: WebSocket): void {
    const connection = returned._connection;
    const server = connection.client === returned ? connection.server : connection.client;
    if (server._hibernatable) return;
    server._setOwner({ whenDurable: () => this.commits.whenDurable() });
    this.#standardSockets++;
    server.addEventListener("close", () => this.#standardSockets--, { once: true });
    server.addEventListener("error", () => this.#standardSockets--, { once: true });
  }

  // ---- hibernatable WebSocket events (object-sockets.ts) ----------------------------

  webSocketMessage(socket: number, data: string | ArrayBuffer, size: number): void {
    // The message stops counting against its peer once its handler starts (or the event
    // fails without running): the mailbox and the gates hold the rest.
    let counted = size > 0;
    const started = () => {
      if (counted) delivered(socket, size);
      counted = false;
    };
    this.#socketEvent(socket, "webSocketMessage", (ws) => {
      started();
      return [ws, data];
    }).finally(started);
  }

  webSocketClose(socket: number, code: number, reason: string, clean: boolean): void {
    this.#socketEvent(socket, "webSocketClose", (ws) => {
      ws._closed(code, reason, clean);
      return [ws, code, reason, clean];
    }).finally(() => this.sockets.release(socket));
  }

  webSocketError(socket: number, message: string): void {
    this.#socketEvent(socket, "webSocketError", (ws) => {
      ws._error(message);
      return [ws, new Error(message)];
    }).finally(() => this.sockets.release(socket));
  }

  /** A hibernatable socket's event, delivered like any other (waking the object if needed). */
  #socketEvent(socket: number, name: string, args: (ws: WebSocket) => unknown[]): Promise<unknown> {
    const timeout = this.sockets.getEventTimeout();
    const event = this.#deliver<unknown>((instance) => {
      const ws = this.sockets.wrapper(socket);
      const values = args(ws);
      const handler = (instance as Record<string, unknown>)[name];
      if (typeof handler !== "function") return undefined; // Cloudflare drops the event
      const result = handler.apply(instance, values);
      if (timeout === null || !(result instanceof Promise)) return result;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(runtimeError(`The ${name}() handler ran longer than its hibernatable event timeout of ${timeout} ms.`)), timeout);
      });
      return Promise.race([result, limit]).finally(() => clearTimeout(timer));
    }, false);
    return event.catch((error) => {
      // As on Cloudflare, an exception in a WebSocket handler is reported, not returned to anyone.
      console.error(`Uncaught exception in ${name}():`, error);
    });
  }

  /**
   * An RPC call (`args`) or property read (`args === undefined`) on the member `path`
   * names, as an event. The result is copied for the caller (stubs for functions and
   * RpcTargets) and released once the writes before it are durable.
   */
  rpc(path: readonly string[], args: unknown[] | undefined): Promise<unknown> {
    if (!this.#rpc) return Promise.reject(noRpcSupport());
    return this.#deliver((instance) => {
      const value = args === undefined ? resolve(instance, path).value : invoke(instance, path, args);
      if (typeof (value as { then?: unknown } | null)?.then === "function") return Promise.resolve(value).then(copyResult);
      return copyResult(value);
    }, true);
  }

  /** Runs `callback` as an event of this object (see testing.ts). */
  run<T>(callback: (instance: object, state: DurableObjectState) => T | Promise<T>): Promise<T> {
    return this.#deliver((instance) => callback(instance, this.#state!), false);
  }

  #deliver<T>(handler: (instance: object) => unknown, remote: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const event: Event = { handler, remote, resolve, reject };
      const token = nextToken();
      const offer = native.mailboxOffer(this.mailbox, token);
      if (offer === START) {
        // As on Cloudflare, a call is asynchronous: the caller's synchronous code runs on
        // before the handler does. A microtask, not a thread hop or an event-loop turn.
        queueMicrotask(() => this.#start(event));
      } else if (offer === OVERLOADED) {
        reject(runtimeError(OVERLOADED_QUEUE, { overloaded: true }));
      } else {
        this.#waiting.set(token, event);
        if (offer === WAIT_AND_SCHEDULE) setImmediate(this.#deliveryPoint);
      }
    });
  }

  /** A turn of the event loop: the mailbox may let one waiting event start. */
  readonly #deliveryPoint = (): void => {
    if (this.#shut) return; // scheduled before close() found the mailbox idle
    const delivered = native.mailboxDeliver(this.mailbox);
    if (delivered === 0) return;
    if (delivered & 1) setImmediate(this.#deliveryPoint);
    this.#startWaiting(delivered >>> 1);
  };

  #startWaiting(token: number): void {
    const event = this.#waiting.get(token)!;
    this.#waiting.delete(token);
    this.#start(event);
  }

  #start(event: Event): void {
    const generation = this.#generation;
    this.#running.add(event);
    let result: unknown;
    try {
      const instance = this.#activate();
      const section = this.#constructorSection;
      result =
        section === undefined
          ? event.handler(instance)
          : section.then(() => (generation === this.#generation ? event.handler(this.#activate()) : undefined));
    } catch (error) {
      this.#finish(event, generation, false, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#finish(event, generation, true, value),
        (error) => this.#finish(event, generation, false, error),
      );
    } else {
      this.#finish(event, generation, true, result);
    }
  }

  #finish(event: Event, generation: number, ok: boolean, value: unknown): void {
    if (generation !== this.#generation) return; // the reset already failed it
    this.#running.delete(event);
    // Idle time counts from when the last running event ends.
    if (this.#running.size === 0) this.lastActive = Date.now();
    // Outputs wait for the writes issued before them; the next event need not.
    const gate = this.commits.whenDurable();
    const next = native.mailboxFinished(this.mailbox);
    const settle = () => (ok ? event.resolve(value) : event.reject(callerError(value, event.remote)));
    if (gate === undefined) settle();
    else gate.then(settle, (error) => event.reject(callerError(error, event.remote)));
    if (next !== 0) this.#handOver(next);
  }

  /** The next event to start once the one finishing on this stack has returned. */
  #handedOver = 0;
  #handingOver = false;

  /**
   * Starts the event the mailbox handed over when one finished. A synchronous handler
   * finishes inside #start, and starting its successor there, on the same stack, made a
   * burst of queued synchronous calls recurse until the stack overflowed (4,000 calls to
   * an object still in its constructor's blockConcurrencyWhile ended the process). So the
   * outermost hand-over loops, and the ones inside it only leave it the token.
   */
  #handOver(token: number): void {
    this.#handedOver = token;
    if (this.#handingOver) return;
    this.#handingOver = true;
    try {
      while (this.#handedOver !== 0) {
        const next = this.#handedOver;
        this.#handedOver = 0;
        this.#startWaiting(next);
      }
    } finally {
      this.#handingOver = false;
    }
  }

  #activate(): object {
    if (!this.#alarmLoaded) {
      // An alarm stored before this process (or before an eviction) is scheduled again.
      this.#alarmLoaded = true;
      this.alarms.scheduleStored();
    }
    if (this.#instance === undefined) {
      const state = new DurableObjectState(this.#id, this);
      this.#state = state;
      this.#constructing = true;
      try {
        this.#instance = new this.#Class(state, this.#ownEnv());
      } catch (error) {
        this.#state = undefined;
        // A critical section the constructor opened would hold the object forever.
        if (this.#constructorSection !== undefined) this.reset(error);
        throw error;
      } finally {
        this.#constructing = false;
      }
    }
    return this.#instance;
  }

  /**
   * The env this object's constructor gets: the registry's, with each namespace binding
   * replaced by one whose stubs hold their calls until this object's earlier writes are
   * durable (Cloudflare's output gate for outgoing calls).
   */
  #ownEnv(): unknown {
    const env = this.#env;
    if (env === null || typeof env !== "object" || ![Object.prototype, null].includes(Object.getPrototypeOf(env))) return env;
    const entries = Object.entries(env);
    if (!entries.some(([, v]) => v instanceof DurableObjectNamespace)) return env;
    return Object.fromEntries(entries.map(([k, v]) => [k, v instanceof DurableObjectNamespace ? v._ownedBy(this.commits) : v]));
  }

  /** Keeps the object from eviction (and close() waiting) until `promise` settles, 15 minutes at most. */
  waitUntil(promise: Promise<unknown>): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const capped = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, WAIT_UNTIL_LIMIT_MS);
      timer.unref?.(); // the promise itself keeps the process alive if it has to
    });
    const p = Promise.race([Promise.resolve(promise).then(noop, noop), capped]);
    this.#waitUntil.add(p);
    p.then(() => {
      clearTimeout(timer);
      this.#waitUntil.delete(p);
    });
  }

  enterCritical(): number {
    if (!native.mailboxEnterCritical(this.mailbox)) {
      throw new Error("blockConcurrencyWhile() and transaction() calls are nested more than 64 deep.");
    }
    return this.#generation;
  }

  checkAlarmHandler(): void {
    // Inside the constructor Cloudflare defers the check; after it, a class without an
    // alarm() handler cannot set alarms.
    if (this.#constructing) return;
    const target = (this.#instance ?? this.#Class.prototype) as { alarm?: unknown };
    if (typeof target.alarm !== "function") {
      throw new TypeError("Your Durable Object class must have an alarm() handler in order to call setAlarm()");
    }
  }

  exitCritical(section: number): void {
    if (section !== this.#generation) return; // a reset closed it
    if (native.mailboxExitCritical(this.mailbox)) setImmediate(this.#deliveryPoint);
  }

  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T> {
    const section = this.enterCritical();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      // Kept referenced: a caller waiting behind the section is pending work, and the
      // timeout is how it ends if the callback never settles.
      timer = setTimeout(() => reject(runtimeError(BLOCK_CONCURRENCY_TIMEOUT, { overloaded: true })), this.#limits.blockConcurrencyWhileTimeout);
    });
    const run = Promise.race([(async () => callback())(), timedOut]).then(
      (value) => {
        clearTimeout(timer);
        if (this.#constructorSection === run) this.#constructorSection = undefined;
        this.exitCritical(section);
        return value;
      },
      (error) => {
        clearTimeout(timer);
        // A failed critical section resets the object: what ran and what waited fail.
        if (section === this.#generation) this.reset(error);
        throw error;
      },
    );
    if (this.#constructing) {
      this.#constructorSection = run;
      run.catch(noop); // the constructing event fails through the reset
    }
    return run;
  }

  // ---- alarms (see alarm-runs.ts) --------------------------------------------------

  get objectName(): string | undefined {
    return this.#id.name;
  }

  alarmChanged(): void {
    this.alarms.changed();
  }

  get exports(): Record<string, unknown> | undefined {
    return this.#limits.exports;
  }

  get deleteAllDeletesAlarm(): boolean {
    return this.#limits.deleteAllDeletesAlarm;
  }

  get valueEncoder(): ValueEncoder {
    return valueEncoder(this.#limits.storedErrors);
  }

  get alarmHidden(): boolean {
    return this.alarms.hidden;
  }

  /** The timer says this object's alarm is due. */
  /** Runs the due alarm (see AlarmRuns.run). */
  runAlarm(turnEnded?: () => void): Promise<void> {
    return this.alarms.run(turnEnded);
  }

  /** @internal For AlarmRuns: an event of this object that is not a call. */
  deliver<T>(handler: (instance: object) => unknown): Promise<T> {
    return this.#deliver<T>(handler, false);
  }

  /** @internal */
  get generation(): number {
    return this.#generation;
  }

  /** @internal The storage and mailbox are released. */
  get shut(): boolean {
    return this.#shut;
  }

  get id(): DurableObjectId {
    return this.#id;
  }

  /**
   * `ctx.abort()`: resets the object now. Uncommitted writes are dropped, in-flight calls
   * fail, and the error is thrown so that the calling code stops. An alarm() run it
   * interrupts is retried unless `retryAlarm` is false.
   */
  abort(reason?: unknown, options?: { retryAlarm?: boolean }): never {
    if (options?.retryAlarm === false) this.alarms.noRetry();
    const error = runtimeError(reason === undefined ? ABORTED : String(reason));
    this.reset(error);
    throw error;
  }

  /** Drops the instance and its uncommitted writes; the next event constructs anew. */
  reset(reason: unknown): void {
    this.#generation++;
    this.#instance = undefined;
    this.#state = undefined;
    this.sockets.dropInstance();
    this.#constructorSection = undefined;
    this.commits.discard(reason);
    // The old instance's code may run on; with its handle voided, its storage calls fail
    // instead of writing into the new instance's turns. The new instance gets its own.
    if (!this.#shut) {
      this.handle = native.storageRekey(this.handle);
      this.syncs.handle = this.handle;
      this.commits = new Commits(this.syncs, (error) => this.reset(error));
      this.storage = new DurableObjectStorage(this.handle, this.commits, this);
    }
    const running = [...this.#running];
    this.#running.clear();
    const waiting = native.mailboxReset(this.mailbox).map((token) => {
      const event = this.#waiting.get(token)!;
      this.#waiting.delete(token);
      return event;
    });
    for (const event of [...running, ...waiting]) event.reject(callerError(reason, event.remote));
  }

  /** When the last event finished (ms since the epoch): idle objects leave memory. */
  lastActive = Date.now();

  /** Nothing running or waiting, every write durable, no waitUntil() pending. */
  get idle(): boolean {
    return (
      !this.#shut && native.mailboxIdle(this.mailbox) && !this.commits.pending && this.#waitUntil.size === 0 && this.#standardSockets === 0
    );
  }

  /** An instance is in memory (its constructor has run since the last eviction or reset). */
  get live(): boolean {
    return this.#instance !== undefined;
  }

  /**
   * Drops the instance of an idle object, as Cloudflare evicts one: its in-memory state
   * goes, storage stays, and the next event runs the constructor again. With `release`
   * the storage handle and mailbox are freed too (the registry forgets the object).
   * Returns false, doing nothing, when the object is not idle.
   */
  evict(release: boolean): boolean {
    if (!this.idle) return false;
    this.#instance = undefined;
    this.#state = undefined;
    this.sockets.dropInstance();
    if (release) {
      this.closed = true;
      this.#shut = true;
      native.storageClose(this.handle);
      native.mailboxClose(this.mailbox);
    }
    return true;
  }

  /** Set once close() has begun: the registry is shutting down. */
  closed = false;
  /** Set once the storage and mailbox are released. */
  #shut = false;

  /** Commits, waits for durability and in-flight work, and closes the object's storage. */
  async close(): Promise<void> {
    this.closed = true;
    while (!native.mailboxIdle(this.mailbox)) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(this.#waitUntil);
    this.commits.commit();
    const gate = this.commits.whenDurable();
    if (gate !== undefined) await gate.catch(noop);
    this.#shut = true;
    native.storageClose(this.handle);
    native.mailboxClose(this.mailbox);
  }
}
