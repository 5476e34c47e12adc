// `ctx.storage.sql`: SqlStorage and its cursor.
//
// exec() runs synchronously up to the first row, as Cloudflare's does (writes happen even
// if the cursor is never read); further rows are fetched from the engine in batches as
// the cursor is iterated. Single-statement queries are prepared once per object and then
// executed by id, so the hot path passes no SQL text to the engine.
import { native, out, result } from "./native.js";
import { encodeParams, Reader } from "./wire.js";
import type { Commits } from "./commits.js";

export type SqlStorageValue = ArrayBuffer | string | number | null;

interface PreparedQuery {
  /** The engine's statement id, or 0 for a multi-statement query. */
  id: number;
  columns: string[] | null;
}

/** Prepared statements kept per object; beyond this the oldest are dropped. */
const MAX_PREPARED = 500;

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
    const params = encodeParams(bindings);
    let prepared = this.#prepared.get(query);
    if (prepared === undefined) prepared = this.#prepare(query);
    // Any statement may write; the engine opens the turn's transaction only if it does.
    this.#commits.wrote();
    let length: number;
    if (prepared.id !== 0) {
      length = native.sqlExec(this.#handle, prepared.id, params, out);
    } else {
      length = native.sqlExecText(this.#handle, query, params, out);
    }
    const cursor = new SqlStorageCursor<T>(CONSTRUCT);
    cursor._start(this.#handle, prepared, result(length));
    return cursor;
  }

  #prepare(query: string): PreparedQuery {
    if (this.#prepared.size >= MAX_PREPARED) {
      const [oldest, p] = this.#prepared.entries().next().value!;
      this.#prepared.delete(oldest);
      if (p.id !== 0) native.sqlForget(this.#handle, p.id);
    }
    const prepared = { id: native.sqlPrepare(this.#handle, query), columns: null };
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

// A cursor dropped before its end would keep its statement busy in the engine.
const abandoned = new FinalizationRegistry<{ handle: number; cursor: number }>(({ handle, cursor }) =>
  native.sqlCloseCursor(handle, cursor),
);
const NO_COLUMNS = 0xffffffff;

export class SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>
  implements IterableIterator<T>
{
  #handle = 0;
  #cursor = 0;
  #columns: string[] = [];
  #rows: SqlStorageValue[][] = [];
  #next = 0;
  #rowsRead = 0;
  #rowsWritten = 0;

  /** Cursors come from `sql.exec()`; like Cloudflare's, they cannot be constructed. */
  constructor(token?: symbol) {
    if (token !== CONSTRUCT) throw new TypeError("Illegal constructor");
  }

  /** @internal */
  _start(handle: number, prepared: PreparedQuery, bytes: Uint8Array): void {
    this.#handle = handle;
    const reader = this.#readHeader(bytes);
    if (reader.columnCount === NO_COLUMNS) {
      prepared.columns ??= native.sqlColumns(handle, prepared.id);
      this.#columns = prepared.columns;
    } else {
      this.#columns = reader.names;
    }
    this.#readRows(reader.reader, reader.rows);
    if (this.#cursor !== 0) abandoned.register(this, { handle, cursor: this.#cursor }, this);
  }

  #readHeader(bytes: Uint8Array) {
    const reader = new Reader(bytes);
    this.#cursor = reader.u32();
    const rows = reader.u32();
    this.#rowsRead = reader.f64();
    this.#rowsWritten = reader.f64();
    const columnCount = reader.u32();
    const names: string[] = [];
    if (columnCount !== NO_COLUMNS) for (let i = 0; i < columnCount; i++) names.push(reader.text());
    return { reader, rows, columnCount, names };
  }

  #readRows(reader: Reader, count: number): void {
    const width = this.#columns.length;
    const rows: SqlStorageValue[][] = new Array(count);
    for (let r = 0; r < count; r++) {
      const row: SqlStorageValue[] = new Array(width);
      for (let c = 0; c < width; c++) row[c] = reader.value() as SqlStorageValue;
      rows[r] = row;
    }
    this.#rows = rows;
    this.#next = 0;
  }

  /** The next row as an array of values, or undefined at the end. */
  #nextRaw(): SqlStorageValue[] | undefined {
    if (this.#next < this.#rows.length) return this.#rows[this.#next++];
    if (this.#cursor === 0) return undefined;
    const length = native.sqlNext(this.#handle, this.#cursor, out);
    const { reader, rows } = this.#readHeader(result(length));
    this.#readRows(reader, rows);
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
