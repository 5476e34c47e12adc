// `ctx.storage`: Cloudflare's DurableObjectStorage on an object's SQLite database.
//
// The async KV methods do their work synchronously and return settled promises, exactly
// like workerd's SQLite backend: awaiting them does not yield to other events and does
// not end the turn's write batch. Errors come back as rejected promises.
import type { Commits } from "./commits.js";
import { checkKvBackendKey, deleteKey, getEntries, keyString, listEntries, readValue, writeValue, type ListOptions } from "./kv-codec.js";
import { native } from "./native.js";
import { SqlStorage } from "./sql.js";
import type { ValueEncoder } from "./structured-clone.js";
import { SyncKvStorage } from "./sync-kv.js";
import { DurableObjectTransaction, TransactionScope, type StorageHost } from "./transaction.js";

export type { ListOptions };
export interface GetOptions {
  allowConcurrency?: boolean;
  noCache?: boolean;
}
export interface PutOptions {
  allowConcurrency?: boolean;
  allowUnconfirmed?: boolean;
  noCache?: boolean;
}

/** workerd's words for the point-in-time-recovery calls its local storage lacks. */
const NO_PITR = "This Durable Object's storage back-end does not implement point-in-time recovery.";

/** A counter as workerd shows its local bookmarks, in the shape of production's. */
function bookmarkText(counter: number): string {
  const hex8 = (n: number) => n.toString(16).padStart(8, "0");
  const UINT32_MAX = 0xffff_ffff;
  return `${hex8(Math.floor(counter / UINT32_MAX))}-${hex8(counter % UINT32_MAX)}-${hex8(0)}-${"0".repeat(32)}`;
}

/** Whether a write holds outputs: all do, unless made with allowUnconfirmed. */
function confirmed(options: PutOptions | undefined): boolean {
  return options?.allowUnconfirmed !== true;
}

/** workerd's words for the SQL APIs of a KV-backed class (production's, actor-state.c++). */
const NOT_SQLITE =
  "This Durable Object is not backed by SQLite storage, so the SQL API is not available. SQL can be enabled on a new Durable Object class by using the `new_sqlite_classes` instead of `new_classes` under `[[migrations]]` in your wrangler.toml, but an already-deployed class cannot be converted to SQLite (except by deleting the existing data).";
const NOT_SQLITE_KV =
  "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable Objects, but this object's namespace is not declared to use SQLite. You can use the older, asynchronous interface via methods of `storage` itself (e.g. `storage.get()`). Alternatively, to enable SQLite, change `new_classes` to `new_sqlite_classes` within the 'migrations' field in your wrangler.jsonc or wrangler.toml file.";

/** Cloudflare documents (and its KV backend enforces) at most 128 keys per call. */
const MAX_KEYS = 128;
const RESOLVED: Promise<void> = Promise.resolve();

function tooManyKeys(n: number): void {
  if (n > MAX_KEYS) throw new RangeError("Maximum number of keys is 128.");
}

function isEntries(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isOptions(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "object" && !Array.isArray(v));
}

/** Runs `f` and turns a throw into a rejected promise, as workerd's promise-returning methods do. */
function promised<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (e) {
    return Promise.reject(e);
  }
}

export class DurableObjectStorage {
  readonly #handle: number;
  readonly #commits: Commits;
  readonly #transactions: TransactionScope;
  readonly #sections: StorageHost;
  /** Stored values are written in the registry's format (fixed for the object's life). */
  readonly #encoder: ValueEncoder;
  #sql: SqlStorage | undefined;
  #kv: SyncKvStorage | undefined;

  /** @internal */
  constructor(handle: number, commits: Commits, sections: StorageHost) {
    this.#handle = handle;
    this.#commits = commits;
    this.#transactions = new TransactionScope(handle, commits, sections);
    this.#sections = sections;
    this.#encoder = sections.valueEncoder;
  }

  // `T = any` (Cloudflare's types say `unknown`) so the usual `(await get(k)) || 0` compiles.
  get<T = any>(key: string, options?: GetOptions): Promise<T | undefined>;
  get<T = any>(keys: string[], options?: GetOptions): Promise<Map<string, T>>;
  get(keys: string | string[], _options?: GetOptions): Promise<unknown> {
    if (!Array.isArray(keys)) {
      try {
        return Promise.resolve(readValue(this.#handle, this.#key(keys)));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return promised(() => this.#getMany(keys));
  }

  #getMany(keys: unknown[]): Map<string, unknown> {
    tooManyKeys(keys.length);
    return getEntries(this.#handle, keys.map((key) => this.#key(key)));
  }

  /** A key as stored: a string, within the KV backend's limit for KV-backed classes. */
  #key(key: unknown): string {
    const text = keyString(key);
    if (!this.#sections.sqlBacked) checkKvBackendKey(text);
    return text;
  }

  put<T>(key: string, value: T, options?: PutOptions): Promise<void>;
  put<T>(entries: Record<string, T>, options?: PutOptions): Promise<void>;
  put(keyOrEntries: unknown, valueOrOptions?: unknown, options?: PutOptions): Promise<void> {
    try {
      if (isEntries(keyOrEntries)) this.#putEntries(keyOrEntries, valueOrOptions);
      else this.#putOne(keyString(keyOrEntries), valueOrOptions, options);
      return RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #putOne(key: string, value: unknown, options: PutOptions | undefined): void {
    if (value === undefined) throw new TypeError("put() called with undefined value.");
    this.#commits.wrote(confirmed(options));
    writeValue(this.#handle, key, value, this.#encoder, !this.#sections.sqlBacked);
  }

  #putEntries(entries: Record<string, unknown>, options: unknown): void {
    if (!isOptions(options)) {
      throw new TypeError(
        "put() may only be called with a single key-value pair and optional options as put(key, value, options) " +
          "or with multiple key-value pairs and optional options as put(entries, options)",
      );
    }
    const keys = Object.keys(entries);
    tooManyKeys(keys.length);
    this.#commits.wrote(confirmed(options as PutOptions | undefined));
    // One batch belongs to one transaction: all of it lands or none of it does.
    this.#transactions.sync(() => {
      for (const key of keys) {
        const value = entries[key];
        if (value !== undefined) writeValue(this.#handle, key, value, this.#encoder, !this.#sections.sqlBacked);
      }
    });
  }

  delete(key: string, options?: PutOptions): Promise<boolean>;
  delete(keys: string[], options?: PutOptions): Promise<number>;
  delete(keys: string | string[], options?: PutOptions): Promise<boolean | number> {
    return promised(() => {
      this.#commits.wrote(confirmed(options));
      if (!Array.isArray(keys)) return deleteKey(this.#handle, this.#key(keys));
      tooManyKeys(keys.length);
      const unique = new Set(keys.map((key) => this.#key(key)));
      let count = 0;
      for (const key of unique) if (deleteKey(this.#handle, key)) count++;
      return count;
    });
  }

  list<T = unknown>(options?: ListOptions & GetOptions): Promise<Map<string, T>> {
    return promised(() => listEntries<T>(this.#handle, options ?? {}));
  }

  /** Deletes every KV entry and every SQL table, atomically with the rest of the turn. */
  deleteAll(options?: PutOptions): Promise<void> {
    return promised(() => {
      if (this.#transactions.depth > 0) throw new Error("Cannot call deleteAll() within a transaction");
      this.#commits.wrote(confirmed(options));
      // Before compat date 2026-02-24 the alarm survives deleteAll().
      const keep = this.#sections.deleteAllDeletesAlarm ? null : native.alarmGet(this.#handle);
      native.deleteAll(this.#handle);
      if (keep !== null) native.alarmSet(this.#handle, keep, this.#sections.objectName);
      this.#sections.alarmChanged();
    });
  }

  /** The alarm's time in ms since the epoch, or null when none is set. */
  getAlarm(_options?: GetOptions): Promise<number | null> {
    return promised(() => (this.#sections.alarmHidden ? null : native.alarmGet(this.#handle)));
  }

  /**
   * Sets the object's one alarm (replacing any earlier one) to `scheduledTime`, in ms
   * since the epoch or a Date; a time in the past means now. A write of this turn: it
   * commits with the turn's other writes, and outputs wait for it.
   */
  setAlarm(scheduledTime: number | Date, options?: PutOptions): Promise<void> {
    return promised(() => {
      const time = scheduledTime instanceof Date ? scheduledTime.getTime() : scheduledTime;
      if (typeof time !== "number" || Number.isNaN(time)) {
        throw new TypeError("setAlarm() expects a number of milliseconds since the epoch or a Date");
      }
      if (time <= 0) throw new TypeError("setAlarm() cannot be called with an alarm time <= 0");
      this.#sections.checkAlarmHandler();
      this.#commits.wrote(confirmed(options));
      native.alarmSet(this.#handle, Math.max(Math.floor(time), Date.now()), this.#sections.objectName);
      this.#sections.alarmChanged();
    });
  }

  /** Removes the alarm (a running alarm() handler is not cancelled). */
  deleteAlarm(options?: PutOptions): Promise<void> {
    return promised(() => {
      this.#commits.wrote(confirmed(options));
      native.alarmSet(this.#handle, null);
      this.#sections.alarmChanged();
    });
  }

  // ---- point-in-time recovery, as workerd serves it locally ---------------------------
  // Real recovery needs the history of every write for 30 days; workerd keeps none locally
  // either. So, like it: SQLite-backed objects get bookmarks that sort in the order they
  // were taken (enough for D1-style sessions), and the two recovery calls refuse with its
  // message, which code detects to know recovery is unavailable.

  /** A bookmark that sorts after every one taken before it in this object (a write of the turn). */
  getCurrentBookmark(): Promise<string> {
    return promised(() => {
      if (!this.#sections.sqlBacked) throw new Error(NO_PITR);
      this.#commits.wrote();
      return bookmarkText(native.localBookmarkNext(this.#handle));
    });
  }

  /** Resolves at once: this object is its own primary, with no replica to wait for. */
  waitForBookmark(_bookmark: string): Promise<void> {
    return this.#sections.sqlBacked ? RESOLVED : Promise.reject(new Error(NO_PITR));
  }

  getBookmarkForTime(_timestamp: number | Date): Promise<string> {
    return Promise.reject(new Error(NO_PITR));
  }

  onNextSessionRestoreBookmark(_bookmark: string): Promise<string> {
    return Promise.reject(new Error(NO_PITR));
  }

  /** Runs `closure` in a transaction: rolled back if it throws or calls txn.rollback(). */
  transaction<T>(closure: (txn: DurableObjectTransaction) => Promise<T>): Promise<T> {
    return this.#transactions.run(this, closure);
  }

  /** Runs a synchronous `closure` in a (nestable) savepoint; rolled back if it throws. */
  transactionSync<T>(closure: () => T): T {
    if (!this.#sections.sqlBacked) throw new Error("Durable Object is not backed by SQL.");
    this.#commits.wrote();
    return this.#transactions.sync(closure);
  }

  /** Resolves once every write issued before the call is durable, allowUnconfirmed ones included. */
  sync(): Promise<void> {
    return this.#commits.whenDurable(true) ?? RESOLVED;
  }

  get sql(): SqlStorage {
    if (!this.#sections.sqlBacked) throw new Error(NOT_SQLITE);
    return (this.#sql ??= new SqlStorage(this.#handle, this.#commits));
  }

  get kv(): SyncKvStorage {
    if (!this.#sections.sqlBacked) throw new Error(NOT_SQLITE_KV);
    return (this.#kv ??= new SyncKvStorage(this.#handle, this.#commits, this.#encoder));
  }
}
