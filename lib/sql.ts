// `ctx.storage.sql`: SqlStorage and its cursor.
//
// exec() runs synchronously up to the first row, as Cloudflare's does (writes happen even
// if the cursor is never read); further rows are fetched from the engine in batches as
// the cursor is iterated. Single-statement queries are prepared once per object and then
// executed by id, so the hot path passes no SQL text to the engine.
import { native, out, outView, result } from "./native.js";
import { encodeParams, params, Reader } from "./wire.js";
import type { Commits } from "./commits.js";

export type SqlStorageValue = ArrayBuffer | string | number | null;

interface PreparedQuery {
  /** The engine's statement id, or 0 for a multi-statement query. */
  id: number;
  columns: string[] | null;
}

/** Prepared statements kept per object; beyond this the oldest are dropped. */
const MAX_PREPARED = 500;
/** sqlPrepare's answer for an object that has no file yet. */
const NOT_PREPARED = 0xffffffff;
/** A query run as text each time (id 0): it carries its column names in every result. */
const UNPREPARED: PreparedQuery = { id: 0, columns: null };

export class SqlStorage {
  readonly #handle: number;
  readonly #commits: Commits;
  readonly #prepared = new Map<string, PreparedQuery>();

  /** @internal */
  constructor(handle: number, commits: Commits) {
    this.#handle = handle;
    this.#commits = commits;
  }

  exec<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
    query: string,
    ...bindings: unknown[]
  ): SqlStorageCursor<T> {
    query = String(query);
    encodeParams(bindings);
    const prepared = this.#prepared.get(query) ?? this.#prepare(query);
    // Any statement may write; the engine opens the turn's transaction only if it does.
    this.#commits.wrote();
    let length: number;
    if (prepared.id !== 0) {
      length = native.sqlExec(this.#handle, prepared.id, params.bytes, params.length, out);
    } else {
      length = native.sqlExecText(this.#handle, query, params.bytes, params.length, out);
    }
    const cursor = new SqlStorageCursor<T>(CONSTRUCT);
    cursor._start(this.#handle, prepared, result(length));
    return cursor;
  }

  #prepare(query: string): PreparedQuery {
    const id = native.sqlPrepare(this.#handle, query);
    // The object has no file yet: run the query as text, and prepare it once a file exists.
    if (id === NOT_PREPARED) return UNPREPARED;
    if (this.#prepared.size >= MAX_PREPARED) {
      const [oldest, p] = this.#prepared.entries().next().value!;
      this.#prepared.delete(oldest);
      if (p.id !== 0) native.sqlForget(this.#handle, p.id);
    }
    const prepared = { id, columns: null };
    this.#prepared.set(query, prepared);
    return prepared;
  }

  /** Bytes the database uses: (page_count - freelist_count) * page_size. */
  get databaseSize(): number {
    return native.databaseSize(this.#handle);
  }

  get Cursor(): typeof SqlStorageCursor {
    return SqlStorageCursor;
  }
}

const CONSTRUCT = Symbol("construct");
const HEADER_BYTES = 28;
const EMPTY: SqlStorageValue[][] = [];

// A cursor dropped before its end would keep its statement busy in the engine.
const abandoned = new FinalizationRegistry<{ handle: number; cursor: number }>(({ handle, cursor }) =>
  native.sqlCloseCursor(handle, cursor),
);
const NO_COLUMNS = 0xffffffff;

export class SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>
  implements IterableIterator<T>
{
  #handle = 0;
  #query: PreparedQuery | undefined;
  /** The engine's cursor while rows remain, else 0. */
  #cursor = 0;
  /** Column names sent with a multi-statement result (a prepared one's are cached). */
  #names: string[] | undefined;
  #rows: SqlStorageValue[][] = EMPTY;
  #next = 0;
  #rowsRead = 0;
  #rowsWritten = 0;

  /** Cursors come from `sql.exec()`; like Cloudflare's, they cannot be constructed. */
  constructor(token?: symbol) {
    if (token !== CONSTRUCT) throw new TypeError("Illegal constructor");
  }

  /** @internal */
  _start(handle: number, query: PreparedQuery, bytes: Uint8Array): void {
    this.#handle = handle;
    this.#query = query;
    this.#read(bytes);
    if (this.#cursor !== 0) abandoned.register(this, { handle, cursor: this.#cursor }, this);
  }

  get #columns(): string[] {
    if (this.#names !== undefined) return this.#names;
    const query = this.#query!;
    return (query.columns ??= native.sqlColumns(this.#handle, query.id));
  }

  /** Reads a result: the header, the rows, then (multi-statement queries) the names. */
  #read(bytes: Uint8Array): void {
    const view = bytes === out ? outView : new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#cursor = view.getUint32(0, true);
    const count = view.getUint32(4, true);
    this.#rowsRead = view.getFloat64(8, true);
    this.#rowsWritten = view.getFloat64(16, true);
    const columnCount = view.getUint32(24, true);
    this.#next = 0;
    if (count === 0 && columnCount === NO_COLUMNS) {
      this.#rows = EMPTY; // the common INSERT: nothing to decode
      return;
    }
    const reader = new Reader(bytes, HEADER_BYTES, view);
    const width = columnCount === NO_COLUMNS ? this.#columns.length : columnCount;
    const rows: SqlStorageValue[][] = count === 0 ? EMPTY : new Array(count);
    for (let r = 0; r < count; r++) {
      const row: SqlStorageValue[] = new Array(width);
      for (let c = 0; c < width; c++) row[c] = reader.value() as SqlStorageValue;
      rows[r] = row;
    }
    this.#rows = rows;
    if (columnCount !== NO_COLUMNS) {
      const names: string[] = new Array(columnCount);
      for (let i = 0; i < columnCount; i++) names[i] = reader.text();
      this.#names = names;
    }
  }

  /** The next row as an array of values, or undefined at the end. */
  #nextRaw(): SqlStorageValue[] | undefined {
    if (this.#next < this.#rows.length) return this.#rows[this.#next++];
    if (this.#cursor === 0) return undefined;
    this.#read(result(native.sqlNext(this.#handle, this.#cursor, out)));
    if (this.#cursor === 0) abandoned.unregister(this);
    return this.#next < this.#rows.length ? this.#rows[this.#next++] : undefined;
  }

  #object(raw: SqlStorageValue[]): T {
    const row: Record<string, SqlStorageValue> = {};
    const columns = this.#columns;
    for (let i = 0; i < columns.length; i++) row[columns[i]!] = raw[i]!;
    return row as T;
  }

  next(): IteratorResult<T, undefined> {
    const raw = this.#nextRaw();
    return raw === undefined ? { done: true, value: undefined } : { done: false, value: this.#object(raw) };
  }

  toArray(): T[] {
    const all: T[] = [];
    for (let raw = this.#nextRaw(); raw !== undefined; raw = this.#nextRaw()) all.push(this.#object(raw));
    return all;
  }

  one(): T {
    const first = this.#nextRaw();
    if (first === undefined) throw new Error("Expected exactly one result from SQL query, but got no results.");
    if (this.#nextRaw() !== undefined) {
      this.#close();
      throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    }
    return this.#object(first);
  }

  /** Rows as arrays; shares its position with the row-object iteration. */
  raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): IterableIterator<U> {
    const self = this;
    return {
      next(): IteratorResult<U, undefined> {
        const raw = self.#nextRaw();
        return raw === undefined ? { done: true, value: undefined } : { done: false, value: raw as U };
      },
      [Symbol.iterator]() {
        return this;
      },
    } as IterableIterator<U>;
  }

  get columnNames(): string[] {
    return [...this.#columns];
  }

  get rowsRead(): number {
    return this.#rowsRead;
  }

  get rowsWritten(): number {
    return this.#rowsWritten;
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this;
  }

  #close(): void {
    if (this.#cursor !== 0) {
      native.sqlCloseCursor(this.#handle, this.#cursor);
      abandoned.unregister(this);
      this.#cursor = 0;
    }
    this.#rows = [];
  }
}
