// Write coalescing and the output gate for one object's storage.
//
// Every write of an event-loop turn joins one SQLite transaction (opened lazily by the
// engine). We commit it once the turn is over — in a setImmediate callback, after the
// microtask queue has drained, as workerd commits after a kj::yield — so awaiting an
// already-resolved storage promise does not split the batch, and a crash either keeps a
// whole turn or none of it.
//
// Outputs (responses, RPC results, ...) wait in `whenDurable()` for every write issued
// before them, except writes made with `allowUnconfirmed` (which only `sync()` waits for).
// Commits are numbered by the database, in Rust (engine/storage/commit_watermark.rs),
// which also decides when they are durable: an instance that was reset and its successor
// share one database, one numbering and one sync at a time (ObjectSyncs below).
// With durability "full" that means the commit has also been fsynced. When
// several objects commit at once, or a sync is already running, fsyncs run on our fsync
// pool (up to 32 at once, in parallel across objects), and commits of one object that pile up during
// its sync share the next one. A lone commit with nothing else in flight is synced on the
// JS thread instead, as long as fsyncs take under a millisecond: there is nothing to
// overlap it with, and the two thread hops would cost (on a VM, where waking an idle CPU
// is slow) 40-50 µs, a fifth of a fast fsync. Events that arrive meanwhile run right after
// it, and their commits, arriving together, go to the pool.
import { native } from "./native.js";

interface Waiter {
  commit: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class Commits {
  /** Writes were issued this turn and are not committed yet. */
  private dirty = false;
  /** Some of them hold outputs (not all were made with allowUnconfirmed). */
  private gating = false;
  /** The database's number of the last commit made, and of the last one durable. */
  private committed: number;
  private durable: number;
  /** The last commit that holds outputs. */
  private gated = 0;
  private syncing = false;
  private waiters: Waiter[] = [];
  /** Open async transactions; the turn's commit waits for them to close. */
  private openTransactions = 0;
  /** Set when a commit or sync failed: the object must be reset. */
  broken: unknown = undefined;
  /** Set once the object was reset: this gate belongs to the old instance and commits no more. */
  #retired = false;
  /** whenDurable() queued a sync of commits this instance was not syncing. */
  #syncQueued = false;

  readonly handle: number;

  constructor(
    private readonly syncs: ObjectSyncs,
    private readonly onFailure: (error: unknown) => void,
  ) {
    this.handle = syncs.handle;
    [this.committed, this.durable] = native.commitPosition(this.handle);
    this.gated = this.committed;
  }

  /**
   * Records that the current turn wrote (or may have written); schedules its commit.
   * `confirmed` false (the write's allowUnconfirmed option) keeps the write from holding
   * outputs.
   */
  wrote(confirmed = true): void {
    if (confirmed) this.gating = true;
    if (!this.dirty) {
      this.dirty = true;
      scheduleCommit(this);
    }
  }

  /**
   * The output gate: resolves once every write issued so far that holds outputs is
   * committed and durable — with `all`, every write (storage.sync()). Returns undefined
   * when that already holds, so callers can skip an await on the fast path.
   */
  whenDurable(all = false): Promise<void> | undefined {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const pending = all ? this.dirty : this.gating;
    const target = pending ? this.committed + 1 : all ? this.committed : this.gated;
    if (this.durable >= target) return undefined;
    // Commits already made that this instance is not syncing — a reset predecessor's,
    // whose sync could not start or is still running — get a sync (or join the running
    // one); else nothing might ever release this wait. In a microtask: a sync that cannot
    // start fails the object, which must not happen inside the caller's own step.
    if (target <= this.committed && !this.syncing && !this.#syncQueued) {
      this.#syncQueued = true;
      queueMicrotask(() => {
        this.#syncQueued = false;
        if (!this.syncing && this.durable < this.committed && this.broken === undefined && !this.#retired) this.sync();
      });
    }
    return new Promise((resolve, reject) => this.waiters.push({ commit: target, resolve, reject }));
  }

  transactionOpened(): void {
    this.openTransactions++;
  }

  transactionClosed(): void {
    this.openTransactions--;
    if (this.openTransactions === 0 && this.dirty) scheduleCommit(this);
  }

  /**
   * Commits the turn's transaction now. Called by the scheduler and on close. `alone`
   * says no other object commits in this batch.
   */
  commit(alone = false): void {
    if (!this.dirty || this.openTransactions > 0 || this.broken !== undefined || this.#retired) return;
    this.dirty = false;
    let outcome: number;
    try {
      outcome = native.commit(this.handle);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (outcome === 0) {
      // Nothing was written after all (e.g. only reads through sql.exec): outputs of this
      // turn wait only for the commits before it.
      this.gating = false;
      for (const w of this.waiters) w.commit = Math.min(w.commit, this.committed);
      this.release();
      return;
    }
    this.committed = Math.abs(outcome);
    if (this.gating) this.gated = this.committed;
    this.gating = false;
    if (outcome < 0) {
      this.durable = this.committed;
      this.release();
    } else if (alone && syncsInFlight === 0 && fsyncEstimate < INLINE_FSYNC_LIMIT_MS) this.syncNow();
    else this.sync();
  }

  private syncNow(): void {
    let durable: number;
    try {
      const started = performance.now();
      durable = native.syncObjectNow(this.handle);
      observeFsync(performance.now() - started);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (durable < 0) return this.sync(); // a sync of this database runs: wait for it
    this.durable = Math.max(this.durable, durable);
    this.release();
  }

  /** Makes every commit so far durable: starts a sync, or waits for the one running. */
  private sync(): void {
    if (this.syncing) return; // the running sync's end starts the next one
    let waits: boolean;
    try {
      waits = this.syncs.request(this);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (waits) {
      this.syncing = true;
      return;
    }
    this.durable = this.committed; // nothing left to sync
    this.release();
  }

  /** A sync of the database ended (ObjectSyncs): `durable` commits are durable now. */
  synced(durable: number, error: string | null): void {
    this.syncing = false;
    if (error !== null) {
      this.fail(new Error(error));
      return;
    }
    this.durable = Math.max(this.durable, durable);
    this.release();
    if (this.durable < this.committed && this.broken === undefined) this.sync();
  }

  private release(): void {
    if (this.waiters.length === 0) return;
    const ready = this.durable;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.commit <= ready) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /**
   * Drops the turn's uncommitted writes (the object is being reset). Outputs that waited
   * for them fail with `reason`; outputs covered by earlier commits still go out.
   */
  discard(reason: unknown): void {
    this.#retired = true;
    if (this.dirty) {
      native.rollback(this.handle);
      this.dirty = false;
    }
    this.gating = false;
    this.openTransactions = 0;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.commit > this.committed) w.reject(reason);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private fail(error: unknown): void {
    const retired = this.#retired; // the object was reset already: its successor goes on
    if (!retired) {
      this.broken = error;
      native.rollback(this.handle);
    }
    this.dirty = false;
    this.gating = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
    if (!retired) this.onFailure(error);
  }

  get pending(): boolean {
    return this.dirty || this.syncing || this.waiters.length > 0 || this.syncs.running;
  }
}

/**
 * The fsyncs of one object's database, shared by the Commits of its successive instances
 * (a reset instance's outputs may still wait for a sync while its successor commits): at
 * most one runs, and when it ends every Commits waiting for it hears so.
 */
export class ObjectSyncs {
  /** The object's current storage handle (a reset gives it a new one). */
  handle: number;
  #waiting = new Set<Commits>();
  #startedAt = 0;
  readonly #token = nextSyncToken();

  constructor(handle: number) {
    this.handle = handle;
  }

  /** A sync we started runs (the pool has not reported its end). */
  get running(): boolean {
    return inFlight.has(this.#token);
  }

  /**
   * Starts a sync of every commit so far, or joins the running one: `commits.synced()`
   * follows. False when every commit is durable already (nothing follows).
   */
  request(commits: Commits): boolean {
    if (!this.running) {
      ensurePool();
      const started = native.syncStart(this.handle, this.#token);
      if (started === 0) return false;
      // 2: a sync of this database runs that we did not start (cannot happen: only we do).
      if (started !== 1) throw new Error("open-do: a sync of this object's database is running that no instance started");
      this.#startedAt = performance.now();
      inFlight.set(this.#token, this);
      syncStarted();
    }
    this.#waiting.add(commits);
    return true;
  }

  /** The pool's report (see syncDone). */
  finished(durable: number, error: string | null): void {
    observeFsync(performance.now() - this.#startedAt);
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const commits of waiting) commits.synced(durable, error);
  }
}

// ---- when a lone commit may sync on the JS thread -------------------------------------

/**
 * A lone commit syncs on the JS thread only while fsyncs are fast: then the thread hops
 * would cost a large share of the fsync, and the JS thread is held for less than this.
 * On a slow disk every fsync goes to the pool (the hops are then a small share).
 */
const INLINE_FSYNC_LIMIT_MS = 1;
/** A moving average of recent fsync times (ms). */
let fsyncEstimate = 0;

function observeFsync(ms: number): void {
  fsyncEstimate += (ms - fsyncEstimate) / 8;
}

// ---- the fsync pool (src/engine/storage/sync_pool.rs) ---------------------------------

/** fsyncs that may run at once, across all objects. */
const SYNC_THREADS = 32;
/** Syncs in flight, by their object's token (an object has at most one). */
const inFlight = new Map<number, ObjectSyncs>();
let lastSyncToken = 0;

function nextSyncToken(): number {
  lastSyncToken = (lastSyncToken + 1) >>> 0 || 1;
  return lastSyncToken;
}
/** Holds the event loop open while syncs are in flight (the pool's callback does not). */
let keepAlive: ReturnType<typeof setInterval> | undefined;
let poolReady = false;

function ensurePool(): void {
  if (!poolReady) {
    native.syncInit(syncDone, SYNC_THREADS);
    poolReady = true;
  }
}

function syncStarted(): void {
  syncsInFlight++;
  keepAlive ??= setInterval(noop, 1 << 30);
}

function syncDone([token, durable, error]: [number, number, string | null]): void {
  const syncs = inFlight.get(token);
  if (syncs === undefined) return;
  inFlight.delete(token);
  if (--syncsInFlight === 0 && keepAlive !== undefined) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
  // This runs as a threadsafe function's callback, where a throw ends the process.
  try {
    syncs.finished(durable, error);
  } catch (e) {
    console.error("Finishing a commit's fsync failed:", e);
  }
}

function noop(): void {}

// One setImmediate commits every object that wrote during the turn.
let scheduled: Commits[] = [];
let immediate = false;
/** fsyncs running on the pool, across all objects. */
let syncsInFlight = 0;

function scheduleCommit(c: Commits): void {
  scheduled.push(c);
  if (!immediate) {
    immediate = true;
    setImmediate(commitScheduled);
  }
}

function commitScheduled(): void {
  immediate = false;
  const batch = scheduled;
  scheduled = [];
  const alone = batch.length === 1;
  for (const c of batch) c.commit(alone);
}

/** Commits everything scheduled right now (used before close and at process exit). */
export function commitPending(): void {
  if (scheduled.length > 0) commitScheduled();
}
