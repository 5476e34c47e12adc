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
// With durability "full" that means the commit has also been fsynced. When
// several objects commit at once, or a sync is already running, fsyncs run on our fsync
// pool (up to 32 at once, in parallel across objects), and commits of one object that pile up during
// its sync share the next one. A lone commit with nothing else in flight is synced on the
// JS thread instead, as long as fsyncs take under a millisecond: there is nothing to
// overlap it with, and the two thread hops would cost (on a VM, where waking an idle CPU
// is slow) 40-50 µs, a fifth of a fast fsync. Events that arrive meanwhile run right after
// it, and their commits, arriving together, go to the pool.
import { native } from "./native.js";

const COMMITTED_DURABLE = 1;
const COMMITTED_NEEDS_SYNC = 2;

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
  /** Commits made so far, and how many of them are durable. */
  private committed = 0;
  private durable = 0;
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

  constructor(
    readonly handle: number,
    private readonly onFailure: (error: unknown) => void,
  ) {}

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
    this.committed++;
    if (this.gating) this.gated = this.committed;
    this.gating = false;
    if (outcome === 0) {
      // Nothing was written after all (e.g. only reads through sql.exec): this "commit" is
      // as durable as the ones before it.
      if (!this.syncing) this.durable = this.committed;
      this.release();
      return;
    }
    if (outcome === COMMITTED_DURABLE) {
      this.durable = this.committed;
      this.release();
    } else if (outcome === COMMITTED_NEEDS_SYNC) {
      if (alone && syncsInFlight === 0 && fsyncEstimate < INLINE_FSYNC_LIMIT_MS) this.syncNow();
      else this.sync();
    }
  }

  private syncNow(): void {
    try {
      const started = performance.now();
      native.syncObjectNow(this.handle);
      observeFsync(performance.now() - started);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.durable = this.committed;
    this.release();
  }

  private sync(): void {
    if (this.syncing) return; // the running sync's completion starts the next one
    const target = this.committed;
    let started: boolean;
    try {
      ensurePool();
      started = native.syncStart(this.handle);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (!started) {
      this.durable = Math.max(this.durable, target);
      this.release();
      return;
    }
    this.syncing = true;
    const startedAt = performance.now();
    syncStarted(this.handle, (error) => {
      observeFsync(performance.now() - startedAt);
      this.syncing = false;
      if (error !== null) {
        this.fail(new Error(error));
        return;
      }
      this.durable = Math.max(this.durable, target);
      this.release();
      if (this.durable < this.committed) this.sync();
    });
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
    if (this.#retired) return; // the object was reset already
    this.broken = error;
    native.rollback(this.handle);
    this.dirty = false;
    this.gating = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
    this.onFailure(error);
  }

  get pending(): boolean {
    return this.dirty || this.syncing || this.waiters.length > 0;
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
/** Syncs in flight, by object handle (an object has at most one). */
const inFlight = new Map<number, (error: string | null) => void>();
/** Holds the event loop open while syncs are in flight (the pool's callback does not). */
let keepAlive: ReturnType<typeof setInterval> | undefined;
let poolReady = false;

function ensurePool(): void {
  if (!poolReady) {
    native.syncInit(syncDone, SYNC_THREADS);
    poolReady = true;
  }
}

function syncStarted(handle: number, done: (error: string | null) => void): void {
  inFlight.set(handle, done);
  syncsInFlight++;
  keepAlive ??= setInterval(noop, 1 << 30);
}

function syncDone([handle, error]: [number, string | null]): void {
  const done = inFlight.get(handle);
  if (done === undefined) return;
  inFlight.delete(handle);
  if (--syncsInFlight === 0 && keepAlive !== undefined) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
  // This runs as a threadsafe function's callback, where a throw ends the process.
  try {
    done(error);
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
