// `storage.transaction()` and `storage.transactionSync()`, both savepoints inside the
// turn's implicit transaction (as in workerd's SQLite backend), so storage and SQL calls
// made inside the closure belong to them.
import type { Commits } from "./commits.js";
import { native } from "./native.js";
import type { DurableObjectStorage, GetOptions, ListOptions, PutOptions } from "./storage.js";
import type { ValueEncoder } from "./structured-clone.js";

/** What storage needs from its object (see object-runtime.ts): the input gate, as a
 * transaction holds it, and the object's alarm state. */
export interface StorageHost {
  /** The name the object was addressed by, if any. */
  readonly objectName: string | undefined;
  /** Opens a section; returns what closes it (a reset in between voids the section). */
  enterCritical(): number;
  exitCritical(section: number): void;
  /** Throws Cloudflare's TypeError when setAlarm() is not allowed (no alarm() handler). */
  checkAlarmHandler(): void;
  /** The alarm was set or deleted (reschedule it once durable). */
  alarmChanged(): void;
  /** getAlarm() answers null (alarm() is running and the alarm was not set again). */
  readonly alarmHidden: boolean;
  /** deleteAll() deletes the alarm too (compat date ≥ 2026-02-24). */
  readonly deleteAllDeletesAlarm: boolean;
  /** The class is SQLite-backed (`new_sqlite_classes`); KV-backed classes have no SQL API. */
  readonly sqlBacked: boolean;
  /** Writes stored values (in the registry's Error format, see kv-codec.ts). */
  readonly valueEncoder: ValueEncoder;
}

export class TransactionScope {
  /** Open savepoints (sync and async). */
  depth = 0;

  constructor(
    private readonly handle: number,
    private readonly commits: Commits,
    private readonly sections: StorageHost,
  ) {}

  sync<T>(closure: () => T): T {
    native.savepointBegin(this.handle);
    this.depth++;
    let value: T;
    try {
      value = closure();
    } catch (e) {
      this.depth--;
      native.savepointEnd(this.handle, false);
      throw e;
    }
    this.depth--;
    native.savepointEnd(this.handle, true);
    return value;
  }

  async run<T>(storage: DurableObjectStorage, closure: (txn: DurableObjectTransaction) => Promise<T>): Promise<T> {
    // A critical section: no other event starts until the closure settles, even while it
    // awaits other I/O.
    const section = this.sections.enterCritical();
    try {
      return await this.runInside(storage, closure);
    } finally {
      this.sections.exitCritical(section);
    }
  }

  private async runInside<T>(storage: DurableObjectStorage, closure: (txn: DurableObjectTransaction) => Promise<T>): Promise<T> {
    this.commits.wrote();
    // The turn's commit must not cut through an open transaction.
    this.commits.transactionOpened();
    native.savepointBegin(this.handle);
    this.depth++;
    let open = true;
    const end = (commit: boolean) => {
      if (!open) return;
      open = false;
      this.depth--;
      native.savepointEnd(this.handle, commit);
    };
    // rollback() undoes the writes at once, as workerd's does.
    const txn = new DurableObjectTransaction(storage, TXN_TOKEN, () => end(false));
    try {
      const value = await closure(txn);
      end(true);
      return value;
    } catch (e) {
      end(false);
      throw e;
    } finally {
      txn._end();
      this.commits.transactionClosed();
    }
  }
}

const TXN_TOKEN = Symbol("transaction");

export class DurableObjectTransaction {
  #storage: DurableObjectStorage | undefined;
  #rolledBack = false;
  #undo: () => void;

  /** @internal */
  constructor(storage: DurableObjectStorage, token?: symbol, undo?: () => void) {
    if (token !== TXN_TOKEN || undo === undefined) throw new TypeError("Illegal constructor");
    this.#storage = storage;
    this.#undo = undo;
  }

  #use(op: string): DurableObjectStorage {
    if (this.#rolledBack) throw new Error(`Cannot ${op} on rolled back transaction`);
    if (this.#storage === undefined) {
      throw new Error(
        `Cannot call ${op} on transaction that has already committed: did you move \`txn\` outside of the closure?`,
      );
    }
    return this.#storage;
  }

  #async<T>(op: string, f: (s: DurableObjectStorage) => Promise<T>): Promise<T> {
    try {
      return f(this.#use(op));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  get(key: string, options?: GetOptions): Promise<unknown>;
  get(keys: string[], options?: GetOptions): Promise<Map<string, unknown>>;
  get(keys: string | string[], options?: GetOptions): Promise<unknown> {
    return this.#async("get", (s) => s.get(keys as string, options));
  }

  put<T>(key: string, value: T, options?: PutOptions): Promise<void>;
  put<T>(entries: Record<string, T>, options?: PutOptions): Promise<void>;
  put(keyOrEntries: unknown, valueOrOptions?: unknown, options?: PutOptions): Promise<void> {
    return this.#async("put", (s) => s.put(keyOrEntries as string, valueOrOptions, options));
  }

  delete(key: string, options?: PutOptions): Promise<boolean>;
  delete(keys: string[], options?: PutOptions): Promise<number>;
  delete(keys: string | string[], options?: PutOptions): Promise<boolean | number> {
    return this.#async("delete", (s) => s.delete(keys as string, options));
  }

  list<T = unknown>(options?: ListOptions & GetOptions): Promise<Map<string, T>> {
    return this.#async("list", (s) => s.list<T>(options));
  }

  deleteAll(): never {
    throw new Error("Cannot call deleteAll() within a transaction");
  }

  getAlarm(options?: GetOptions): Promise<number | null> {
    return this.#async("getAlarm", (s) => s.getAlarm(options));
  }

  setAlarm(scheduledTime: number | Date, options?: PutOptions): Promise<void> {
    return this.#async("setAlarm", (s) => s.setAlarm(scheduledTime, options));
  }

  deleteAlarm(options?: PutOptions): Promise<void> {
    return this.#async("deleteAlarm", (s) => s.deleteAlarm(options));
  }

  /** Undoes the transaction's writes when the closure returns. Idempotent. */
  rollback(): void {
    if (this.#rolledBack) return;
    this.#use("rollback");
    this.#rolledBack = true;
    this.#undo();
  }

  /** @internal */
  _end(): void {
    this.#storage = undefined;
  }
}
