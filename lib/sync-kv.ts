// `ctx.storage.kv`: the synchronous KV API of SQLite-backed objects. It shares `_cf_KV`
// and the value format with the async API.
import type { Commits } from "./commits.js";
import { deleteKey, keyString, listEntryArray, readValue, writeValue, type ListOptions } from "./kv-codec.js";
import type { ValueEncoder } from "./structured-clone.js";

/** kv.list() reads lazily, this many entries at a time. */
const LIST_PAGE = 128;

export class SyncKvStorage {
  readonly #handle: number;
  readonly #commits: Commits;
  readonly #encoder: ValueEncoder;
  #listGeneration = 0;

  /** @internal */
  constructor(handle: number, commits: Commits, encoder: ValueEncoder) {
    this.#handle = handle;
    this.#commits = commits;
    this.#encoder = encoder;
  }

  get<T = unknown>(key: string): T | undefined {
    return readValue(this.#handle, keyString(key)) as T | undefined;
  }

  put<T>(key: string, value: T): void {
    const k = keyString(key);
    this.#commits.wrote();
    writeValue(this.#handle, k, value, this.#encoder);
  }

  delete(key: string): boolean {
    const k = keyString(key);
    this.#commits.wrote();
    return deleteKey(this.#handle, k);
  }

  /**
   * A lazy iterator over [key, value] in key order (reverse with `reverse`). Only one can
   * be live: starting another invalidates the previous one, as in Cloudflare.
   */
  list<T = unknown>(options: ListOptions = {}): IterableIterator<[string, T]> {
    const generation = ++this.#listGeneration;
    const handle = this.#handle;
    const limit = options.limit;
    // Validate the options now (errors are thrown by list(), not by the first next()).
    let page = listEntryArray<T>(handle, { ...options, limit: Math.min(limit ?? LIST_PAGE, LIST_PAGE) });
    let index = 0;
    let returned = 0;
    let exhausted = page.entries.length < Math.min(limit ?? LIST_PAGE, LIST_PAGE);
    const self = this;
    return {
      next(): IteratorResult<[string, T]> {
        if (generation !== self.#listGeneration) {
          throw new Error(
            "kv.list() iterator was invalidated because a new call to kv.list() was started. " +
              "Only one kv.list() iterator can exist at a time.",
          );
        }
        if (limit !== undefined && returned >= limit) return { done: true, value: undefined };
        if (index === page.entries.length && !exhausted) {
          const want = Math.min(limit === undefined ? LIST_PAGE : limit - returned, LIST_PAGE);
          // Go on after the last key as stored: its decoded form may name another key.
          page = listEntryArray<T>(handle, { ...options, limit: want }, page.lastKey);
          index = 0;
          exhausted = page.entries.length < want;
        }
        if (index === page.entries.length) return { done: true, value: undefined };
        returned++;
        return { done: false, value: page.entries[index++]! };
      },
      [Symbol.iterator]() {
        return this;
      },
    };
  }
}
