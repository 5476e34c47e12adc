// DurableObjectNamespace and DurableObjectId. Ids are derived in Rust exactly as workerd's
// local mode derives them (src/engine/ids.rs), so a project keeps its ids and files when
// it moves between `wrangler dev` and open-do.
import { native } from "./native.js";
import type { ObjectDirectory } from "./registry.js";
import type { DurableObjectStub } from "./stub.js";

export class DurableObjectId {
  readonly #hex: string;
  readonly name: string | undefined;
  /** @internal */
  readonly _namespace: DurableObjectNamespace;

  /** @internal */
  constructor(namespace: DurableObjectNamespace, hex: string, name: string | undefined) {
    this._namespace = namespace;
    this.#hex = hex;
    this.name = name;
  }

  toString(): string {
    return this.#hex;
  }

  equals(other: DurableObjectId): boolean {
    return other instanceof DurableObjectId && other.#hex === this.#hex;
  }

  toJSON(): string {
    return this.#hex;
  }
}

export class DurableObjectNamespace<T = unknown> {
  /** The folder under dataDir and the key ids are derived from. */
  readonly uniqueKey: string;
  readonly #directory: ObjectDirectory;

  /** @internal */
  constructor(uniqueKey: string, directory: ObjectDirectory) {
    this.uniqueKey = uniqueKey;
    this.#directory = directory;
  }

  idFromName(name: string): DurableObjectId {
    name = String(name);
    return new DurableObjectId(this, native.idFromName(this.uniqueKey, name), name);
  }

  idFromString(id: string): DurableObjectId {
    return new DurableObjectId(this, native.parseId(this.uniqueKey, String(id)), undefined);
  }

  newUniqueId(_options?: { jurisdiction?: string }): DurableObjectId {
    return new DurableObjectId(this, native.newUniqueId(this.uniqueKey), undefined);
  }

  /** A stub for `id`. Creates nothing: the object starts on its first call. */
  get(id: DurableObjectId, _options?: { locationHint?: string }): DurableObjectStub<T> {
    if (!(id instanceof DurableObjectId)) throw new TypeError("get() expects a DurableObjectId.");
    const StubClass = this.#directory.stubClass(this.uniqueKey);
    return new StubClass(id, this.uniqueKey, this.#directory) as DurableObjectStub<T>;
  }

  getByName(name: string, options?: { locationHint?: string }): DurableObjectStub<T> {
    return this.get(this.idFromName(name), options);
  }
}
