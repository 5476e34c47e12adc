// The Registry: where objects live in this process. It owns the data folder, the
// namespaces (one per class, keyed by uniqueKey) and the live objects.
import fs from "node:fs";
import path from "node:path";
import { ALARM_TIME_LIMIT_MS, alarmKey, releaseAlarmKey, scheduleAlarm } from "./alarms.js";
import { commitPending } from "./commits.js";
import { DurableObjectId, DurableObjectNamespace } from "./namespace.js";
import { native } from "./native.js";
import { ObjectRuntime, type ObjectClass, type RuntimeLimits } from "./object-runtime.js";
import { DurableObjectStub, fetchOnlyStubClass, stubClassFor } from "./stub.js";
import { OpenDO } from "./durable-object.js";
import { disownGroup, HibernationRecord, ownGroup } from "./object-sockets.js";
import { Server, type ListenOptions } from "./server.js";
import type { CompatFlags } from "./wrangler/compat.js";
import { setArgumentStubTransfer } from "./rpc/copy.js";
import { configureWebSockets } from "./websocket.js";

/**
 * An object that used no storage for this long gives up its open database file while it
 * stays in memory: a connection holds ~80 KiB, and reopening costs a fraction of a
 * millisecond. Idle time is counted in epochs of at least this long, advanced by the sweep
 * (every 10 s at most), so a file closes 10 to 40 s after its last use.
 */
const FILE_IDLE_MS = 10_000;

export interface RegistryOptions {
  /** Folder for the objects' SQLite files (workerd's layout), or ":memory:". Default ".open-do". */
  dataDir?: string;
  /** The `env` every object's constructor receives. */
  env?: unknown;
  /**
   * "full" (default, as workerd): a write is fsynced before anything that depends on it is
   * released. "relaxed": a write survives a killed process but not a power cut.
   */
  durability?: "full" | "relaxed";
  /**
   * Events waiting for one object before further calls fail with Cloudflare's
   * "Durable Object is overloaded. Too many requests queued." Default 10,000.
   */
  maxQueuedEvents?: number;
  /** ms a blockConcurrencyWhile() callback may run before the object is reset. Default 30,000 (Cloudflare's). */
  blockConcurrencyWhileTimeout?: number;
  /**
   * ms an object with nothing pending stays in memory before it is evicted (its next
   * event runs the constructor again; storage is kept). Default 70,000, the low end of
   * Cloudflare's 70–140 s for objects that cannot hibernate. `Infinity` keeps objects.
   */
  idleTimeout?: number;
  /**
   * For tests: multiplies the delays between alarm retries (Cloudflare's 2 s × 2^n plus
   * jitter), e.g. 0.001 so that six retries take milliseconds. Default 1.
   */
  alarmRetryScale?: number;
  /**
   * ms an object whose only ties are hibernatable WebSockets (and alarms) stays in memory
   * once idle. Default 10,000 (Cloudflare's ~10 s). Its sockets stay open; the next
   * message runs the constructor again.
   */
  hibernationTimeout?: number;
  /**
   * Cloudflare's compatibility flags that change Durable Object behaviour (see
   * lib/wrangler/compat.ts); `open-do serve` derives them from the wrangler config.
   * Unset flags keep open-do's defaults: deleteAll() deletes the alarm, close reasons are
   * limited to 123 bytes, binary messages of the standard WebSocket API arrive as
   * ArrayBuffer, stored Errors use V8's format. The WebSocket flags and
   * rpc_params_dup_stubs are process-wide (WebSocketPair and stubs are made outside any
   * registry): the last Registry created sets them.
   */
  compatibility?: Partial<CompatFlags>;
  /**
   * What `ctx.exports` gives objects (and `ctx.exports` in listen()'s handler): the
   * Worker's own exports as bindings. `open-do serve` fills it; the object is shared, so it
   * may be filled after the Registry is made.
   */
  exports?: Record<string, unknown>;
  /** ms an alarm() run may take before the object is reset and the run retried. Default 900,000 (Cloudflare's 15 minutes). */
  alarmTimeLimit?: number;
  /**
   * ms one `sql.exec()` (or one batch of a cursor's rows) may run before the statement is
   * interrupted with an error. Storage runs on the JavaScript thread, so without a limit a
   * runaway query (an unbounded recursive CTE) would freeze the whole process. Default
   * 30,000 (Cloudflare's CPU limit per request). `Infinity` turns the limit off.
   */
  sqlTimeLimit?: number;
}

export interface NamespaceOptions {
  /** Names the namespace's folder and keys its ids. Default: the class name. */
  uniqueKey?: string;
  /**
   * "sqlite" (default; wrangler's `new_sqlite_classes`) or "kv" (`new_classes`): a
   * KV-backed class has the async KV API only; `sql`, `kv` and `transactionSync` throw
   * Cloudflare's errors.
   */
  storage?: "sqlite" | "kv";
}

/** How stubs reach live objects. */
export interface ObjectDirectory {
  runtime(uniqueKey: string, id: DurableObjectId): ObjectRuntime;
  stubClass(uniqueKey: string): typeof DurableObjectStub;
  /** stub.fetch() needs an absolute URL (compat flag durable_object_fetch_requires_full_url). */
  readonly fetchRequiresFullUrl: boolean;
  /** The ids (hex, sorted) of the namespace's objects that have storage. */
  storedIds(uniqueKey: string): string[];
}

const HEX_ID = /^[0-9a-fA-F]{64}$/;
/** An object's database file: `<idHex>.sqlite` (workerd's layout). */
const DATABASE_FILE = /^([0-9a-f]{64})\.sqlite$/;

export class Registry implements ObjectDirectory {
  readonly dataDir: string;
  readonly durability: "full" | "relaxed";
  readonly #env: unknown;
  readonly #limits: RuntimeLimits;
  readonly #namespaces = new Map<string, { Class: ObjectClass; namespace: DurableObjectNamespace; sqlBacked: boolean }>();
  /** Namespaces handed out before their class was known (see reserveNamespace). */
  readonly #reserved = new Map<string, DurableObjectNamespace>();
  readonly #runtimes = new Map<string, ObjectRuntime>();
  readonly #idleTimeout: number;
  readonly #hibernationTimeout: number;
  readonly #sqlTimeLimit: number;
  readonly fetchRequiresFullUrl: boolean;
  /** Stubs have RPC (compat flag rpc, 2024-04-03). */
  readonly #rpc: boolean;
  /** What each object's WebSockets keep through hibernation and eviction. */
  readonly #hibernation = new Map<string, HibernationRecord>();
  readonly #servers = new Set<Server>();
  /** Alarm timer keys, by object (kept while the object is evicted: its alarm wakes it). */
  readonly #alarmKeys = new Map<string, number>();
  /** The namespace folders this registry serves, locked against other processes (by uniqueKey). */
  readonly #folderLocks = new Map<string, number>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /**
   * dataDir as an absolute path, fixed when the registry is created: the engine finds files
   * by name (a sync opens the WAL it fsyncs), so a later process.chdir() must not move them.
   */
  readonly #folder: string;

  constructor(options: RegistryOptions = {}) {
    this.dataDir = options.dataDir ?? ".open-do";
    this.#folder = this.dataDir === ":memory:" ? this.dataDir : path.resolve(this.dataDir);
    this.durability = options.durability ?? "full";
    if (this.durability !== "full" && this.durability !== "relaxed") {
      throw new TypeError(`durability must be "full" or "relaxed", not ${JSON.stringify(this.durability)}`);
    }
    this.#env = options.env ?? {};
    this.#limits = {
      maxQueuedEvents: positiveInteger(options.maxQueuedEvents, 10_000, "maxQueuedEvents"),
      blockConcurrencyWhileTimeout: positiveInteger(options.blockConcurrencyWhileTimeout, 30_000, "blockConcurrencyWhileTimeout"),
      alarmRetryScale: positiveNumber(options.alarmRetryScale, 1, "alarmRetryScale"),
      alarmTimeLimit: positiveInteger(options.alarmTimeLimit, ALARM_TIME_LIMIT_MS, "alarmTimeLimit"),
      deleteAllDeletesAlarm: options.compatibility?.delete_all_deletes_alarm ?? true,
      storedErrors: options.compatibility?.enhanced_error_serialization === true ? "workerd" : "v8",
      exports: options.compatibility?.enable_ctx_exports === false ? undefined : options.exports,
    };
    const compat = options.compatibility ?? {};
    this.fetchRequiresFullUrl = compat.durable_object_fetch_requires_full_url ?? true;
    this.#rpc = compat.rpc ?? true;
    setArgumentStubTransfer(compat.rpc_params_dup_stubs === false);
    configureWebSockets({
      closeAutoReply: compat.web_socket_auto_reply_to_close ?? true,
      closeReasonByteLimit: compat.websocket_close_reason_byte_limit ?? true,
      standardBinaryType: (compat.websocket_standard_binary_type ?? false) ? "blob" : "arraybuffer",
    });
    const idle = options.idleTimeout ?? 70_000;
    this.#idleTimeout = idle === Infinity ? Infinity : positiveInteger(idle, 70_000, "idleTimeout");
    const sqlLimit = options.sqlTimeLimit ?? 30_000;
    // Infinity: no limit (a limit too long to matter, for the engine).
    this.#sqlTimeLimit = sqlLimit === Infinity ? 1e12 : positiveInteger(sqlLimit, 30_000, "sqlTimeLimit");
    const hibernation = options.hibernationTimeout ?? 10_000;
    this.#hibernationTimeout = hibernation === Infinity ? Infinity : positiveInteger(hibernation, 10_000, "hibernationTimeout");
  }

  /** The namespace of `Class`: idFromName, idFromString, newUniqueId, get, getByName. */
  namespace<T extends object>(Class: new (...args: any[]) => T, options: NamespaceOptions = {}): DurableObjectNamespace<T> {
    if (typeof Class !== "function") throw new TypeError("namespace() expects a Durable Object class.");
    const uniqueKey = options.uniqueKey ?? Class.name;
    if (!uniqueKey) throw new TypeError("This class has no name; pass { uniqueKey } to name its namespace.");
    const existing = this.#namespaces.get(uniqueKey);
    if (existing !== undefined) {
      if (existing.Class !== Class) {
        throw new Error(`The namespace "${uniqueKey}" already belongs to another class; pass a distinct { uniqueKey }.`);
      }
      return existing.namespace as DurableObjectNamespace<T>;
    }
    this.#checkOpen();
    // The key names a folder: refuse one that would leave dataDir now, not at the first write.
    checkNamespaceKey(uniqueKey);
    const storage = options.storage ?? "sqlite";
    if (storage !== "sqlite" && storage !== "kv") throw new TypeError(`storage must be "sqlite" or "kv", not ${JSON.stringify(storage)}`);
    this.#lockFolder(uniqueKey);
    const namespace = (this.#reserved.get(uniqueKey) as DurableObjectNamespace<T> | undefined) ?? new DurableObjectNamespace<T>(uniqueKey, this);
    this.#reserved.delete(uniqueKey);
    this.#namespaces.set(uniqueKey, { Class: Class as unknown as ObjectClass, namespace, sqlBacked: storage === "sqlite" });
    this.#scheduleStoredAlarms(uniqueKey, namespace);
    return namespace;
  }

  /**
   * A stub for the object named `nameOrId` (or with that id: a DurableObjectId, or the
   * 64-hex-digit string of one) of `Class`.
   */
  async get<T extends object>(nameOrId: string | DurableObjectId, Class: new (...args: any[]) => T): Promise<DurableObjectStub<T>> {
    this.#checkOpen();
    const namespace = this.namespace(Class);
    if (nameOrId instanceof DurableObjectId) return namespace.get(nameOrId);
    const text = String(nameOrId);
    if (HEX_ID.test(text)) {
      try {
        return namespace.get(namespace.idFromString(text));
      } catch {
        // Not an id of this namespace: it is a name.
      }
    }
    return namespace.getByName(text);
  }

  /** @internal */
  runtime(uniqueKey: string, id: DurableObjectId): ObjectRuntime {
    this.#checkOpen();
    const key = runtimeKey(uniqueKey, id);
    let runtime = this.#runtimes.get(key);
    if (runtime === undefined) {
      const entry = this.#namespaces.get(uniqueKey);
      if (entry === undefined) throw new Error(`No namespace "${uniqueKey}" in this registry.`);
      const handle = native.storageOpen(this.#folder, uniqueKey, id.toString(), this.durability, this.#sqlTimeLimit);
      const sockets = {
        record: this.#hibernation.get(key),
        register: () => {
          let record = this.#hibernation.get(key);
          if (record === undefined) this.#hibernation.set(key, (record = new HibernationRecord()));
          if (record.group === 0) ownGroup(record, this.#socketHost(uniqueKey, id));
          return record;
        },
      };
      runtime = new ObjectRuntime(id, handle, entry.Class, this.#env, this.#limits, supportsRpc(entry.Class), this.#alarmScheduler(uniqueKey, id), sockets, entry.sqlBacked);
      this.#runtimes.set(key, runtime);
      this.#startSweeper();
    }
    return runtime;
  }

  /**
   * Where a hibernation group's events go: the object's runtime, remembered between
   * events (a message should not cost a registry lookup) and looked up again once it was
   * released. Undefined once the registry is closed.
   */
  #socketHost(uniqueKey: string, id: DurableObjectId): () => ObjectRuntime | undefined {
    let runtime: ObjectRuntime | undefined;
    return () => {
      if (this.#closed) return undefined;
      if (runtime === undefined || runtime.shut) runtime = this.runtime(uniqueKey, id);
      return runtime;
    };
  }

  /**
   * Alarms stored before this registry started (by an earlier process, or one killed) are
   * due whether or not anything touches their objects: the namespace's alarm index says
   * which objects have one; each object's own storage says when.
   */
  #scheduleStoredAlarms(uniqueKey: string, namespace: DurableObjectNamespace): void {
    if (this.dataDir === ":memory:") return;
    for (const entry of native.alarmIndexEntries(this.#folder, uniqueKey)) {
      let id: DurableObjectId;
      try {
        id = namespace._storedId(entry.id, entry.name ?? undefined);
      } catch {
        continue; // a file that does not belong to this namespace
      }
      this.#alarmScheduler(uniqueKey, id)(entry.time);
    }
  }

  /** How an object's alarm reaches the timer; a due alarm runs in the object (waking it if evicted). */
  #alarmScheduler(uniqueKey: string, id: DurableObjectId): (atMs: number | null) => void {
    const objectKey = runtimeKey(uniqueKey, id);
    return (atMs) => {
      if (this.#closed) return;
      let key = this.#alarmKeys.get(objectKey);
      if (atMs === null) {
        if (key !== undefined) scheduleAlarm(key, null);
        return;
      }
      if (key === undefined) {
        key = alarmKey((turnEnded) => (this.#closed ? undefined : this.runtime(uniqueKey, id).runAlarm(turnEnded)));
        this.#alarmKeys.set(objectKey, key);
      }
      scheduleAlarm(key, atMs);
    };
  }

  /** @internal See ObjectDirectory.storedIds. */
  storedIds(uniqueKey: string): string[] {
    this.#checkOpen();
    if (this.dataDir === ":memory:") {
      // In-memory databases live as long as their runtime, which this registry keeps.
      const prefix = `${uniqueKey}/`;
      const ids: string[] = [];
      for (const [key, runtime] of this.#runtimes) {
        if (key.startsWith(prefix) && !runtime.shut && native.databaseSize(runtime.handle) > 0) ids.push(runtime.id.toString());
      }
      return ids.sort();
    }
    let files: string[];
    try {
      files = fs.readdirSync(path.join(this.#folder, uniqueKey));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return []; // nothing was ever written
      throw error;
    }
    return files.flatMap((file) => DATABASE_FILE.exec(file)?.[1] ?? []).sort();
  }

  /** Objects with an instance in memory right now. */
  get liveObjects(): number {
    let live = 0;
    for (const runtime of this.#runtimes.values()) if (runtime.live) live++;
    return live;
  }

  /**
   * Evicts idle objects now, whatever their idle time (all of them, or the one behind
   * `stub`), as Cloudflare may at any moment: the next event runs the constructor again.
   * Objects with work in flight stay. Returns how many were evicted. Meant for tests.
   */
  evictIdle(stub?: DurableObjectStub): number {
    if (stub !== undefined) {
      const key = stub._key();
      const runtime = this.#runtimes.get(key);
      return runtime !== undefined && this.#evict(key, runtime) ? 1 : 0;
    }
    return this.#sweep(0, 0);
  }

  #startSweeper(): void {
    const shortest = Math.min(this.#idleTimeout, this.#hibernationTimeout);
    if (this.#sweeper !== undefined || shortest === Infinity) return;
    const every = Math.min(Math.max(shortest / 4, 100), 10_000);
    this.#sweeper = setInterval(() => {
      this.#sweep();
      native.storageCloseIdleFiles(FILE_IDLE_MS);
    }, every);
    // Eviction is housekeeping: it never keeps the process alive.
    this.#sweeper.unref?.();
  }

  /** Evicts objects idle for `idleFor` ms, or `hibernateAfter` ms if they hold hibernatable sockets. */
  #sweep(idleFor = this.#idleTimeout, hibernateAfter = this.#hibernationTimeout): number {
    const now = Date.now();
    let evicted = 0;
    for (const [key, runtime] of this.#runtimes) {
      const idle = now - runtime.lastActive;
      if (idle < Math.min(idleFor, hibernateAfter)) continue;
      if (idle < idleFor && !runtime.sockets.any) continue;
      if (this.#evict(key, runtime)) evicted++;
    }
    return evicted;
  }

  /**
   * Serves HTTP and WebSockets on `port` (default 8787) through the Worker-style
   * `fetch(request, env, ctx)`. Resolves once the server listens.
   */
  async listen(options: ListenOptions): Promise<Server> {
    this.#checkOpen();
    const server = new Server(options, this.#env, this.#limits.exports, this);
    this.#servers.add(server);
    return server;
  }

  /** Files are released and forgotten; in-memory storage must stay, so only the instance goes. */
  #evict(key: string, runtime: ObjectRuntime): boolean {
    const release = this.dataDir !== ":memory:";
    if (!runtime.live && !release) return false;
    if (!runtime.evict(release)) return false;
    if (release) this.#runtimes.delete(key);
    return true;
  }

  /**
   * @internal The namespace `uniqueKey` will be, before its class is known: `open-do serve`
   * puts it in `env` before the Worker's module runs (its top level may read `env`), and
   * namespace() adopts it once the module gave the class. Ids work at once; stubs do not
   * reach an object until then.
   */
  reserveNamespace(uniqueKey: string): DurableObjectNamespace {
    const existing = this.#namespaces.get(uniqueKey)?.namespace ?? this.#reserved.get(uniqueKey);
    if (existing !== undefined) return existing;
    this.#checkOpen();
    checkNamespaceKey(uniqueKey);
    this.#lockFolder(uniqueKey);
    const namespace = new DurableObjectNamespace(uniqueKey, this);
    this.#reserved.set(uniqueKey, namespace);
    return namespace;
  }

  /**
   * One process at a time serves a namespace's folder: two would interleave commits and
   * lose or corrupt data. The lock is the kernel's (released when the process ends, even
   * killed), so a second process, or a second open Registry here, fails now, with one line
   * naming the folder and who holds it.
   */
  #lockFolder(uniqueKey: string): void {
    if (this.#folderLocks.has(uniqueKey)) return;
    const lock = native.namespaceLock(this.#folder, uniqueKey);
    if (lock !== null) this.#folderLocks.set(uniqueKey, lock);
  }

  /** @internal The namespace with this uniqueKey, or else of the one class with this name (remote RPC). */
  namespaceNamed(name: string): DurableObjectNamespace | undefined {
    const exact = this.#namespaces.get(name);
    if (exact !== undefined) return exact.namespace;
    const byClass = [...this.#namespaces.values()].filter((e) => e.Class.name === name);
    return byClass.length === 1 ? byClass[0]!.namespace : undefined;
  }

  /** @internal */
  stubClass(uniqueKey: string): typeof DurableObjectStub {
    const entry = this.#namespaces.get(uniqueKey);
    if (entry === undefined) {
      if (this.#reserved.has(uniqueKey)) throw new Error(`The Durable Object class of namespace "${uniqueKey}" is not loaded yet: stubs can be made once the Worker's module has run.`);
      throw new Error(`No namespace "${uniqueKey}" in this registry.`);
    }
    if (!this.#rpc) return fetchOnlyStubClass();
    return stubClassFor(entry.Class, supportsRpc(entry.Class));
  }

  /**
   * Resets every live object with `error` (Cloudflare does this when a Worker's code is
   * updated): calls in flight and waiting fail with it, instances are dropped, and writes
   * already made stay. The next event constructs anew.
   */
  resetAll(error: unknown): void {
    for (const runtime of this.#runtimes.values()) runtime.reset(error);
  }

  /** Lets in-flight work finish, commits every write, and closes every file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      commitPending();
      if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
      await Promise.all([...this.#servers].map((s) => s.close()));

      for (const key of this.#alarmKeys.values()) releaseAlarmKey(key);
      this.#alarmKeys.clear();
      await Promise.all([...this.#runtimes.values()].map((r) => r.close()));
      this.#runtimes.clear();
      if (this.dataDir !== ":memory:") for (const uniqueKey of this.#namespaces.keys()) native.alarmIndexClose(this.#folder, uniqueKey);
      for (const record of this.#hibernation.values()) disownGroup(record);
    } finally {
      // Last, and however closing went: another process may take the folders over.
      for (const lock of this.#folderLocks.values()) native.namespaceUnlock(lock);
      this.#folderLocks.clear();
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("This Registry is closed.");
  }
}

/**
 * A uniqueKey names a folder and keys the namespace's ids, so it must survive the trip to
 * Rust intact: a lone surrogate would become U+FFFD there, and two keys differing only in
 * one would share a folder and ids, each reading the other's objects.
 */
function checkNamespaceKey(uniqueKey: string): void {
  if (!uniqueKey.isWellFormed()) {
    throw new TypeError(`Invalid Durable Object namespace key ${JSON.stringify(uniqueKey)}: it holds a lone surrogate (it is not well-formed Unicode).`);
  }
  native.checkNamespaceKey(uniqueKey);
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer, not ${String(value)}`);
  return value;
}

/** Cloudflare serves RPC only to classes that extend DurableObject. */
function supportsRpc(Class: Function): boolean {
  return Class === OpenDO || Class.prototype instanceof OpenDO;
}

/** How the registry files a live object. */
export function runtimeKey(uniqueKey: string, id: DurableObjectId): string {
  return `${uniqueKey}/${id}`;
}

function positiveNumber(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) throw new TypeError(`${name} must be a positive number, not ${String(value)}`);
  return value;
}
