// DurableObjectNamespace and DurableObjectId, as Cloudflare defines them.
import { native } from "./native.js";
import { ByteWriter } from "./wire.js";
import type { ObjectDirectory } from "./registry.js";
import type { DurableObjectStub } from "./stub.js";

export type DurableObjectJurisdiction = "eu" | "fedramp" | "fedramp-high" | "us";
const JURISDICTIONS: readonly string[] = ["eu", "fedramp", "fedramp-high", "us"];

export class DurableObjectId {
  readonly #hex: string;
  readonly name: string | undefined;
  /** The jurisdiction the id was made in, if any. */
  readonly jurisdiction: DurableObjectJurisdiction | undefined;
  /** @internal */
  readonly _namespace: DurableObjectNamespace;

  /** @internal */
  constructor(namespace: DurableObjectNamespace, hex: string, name: string | undefined, jurisdiction: string | undefined) {
    this._namespace = namespace;
    this.#hex = hex;
    this.name = name;
    this.jurisdiction = jurisdiction as DurableObjectJurisdiction | undefined;
  }

  toString(): string {
    return this.#hex;
  }

  /** Compare ids with this, never with `===`. */
  equals(other: DurableObjectId): boolean {
    return other instanceof DurableObjectId && other.#hex === this.#hex;
  }

  toJSON(): string {
    return this.#hex;
  }
}

/** What calls made by an object wait for: its writes issued before them (see commits.ts). */
export interface OutputGate {
  whenDurable(): Promise<void> | undefined;
}

export class DurableObjectNamespace<T = unknown> {
  /** The folder under dataDir and the key ids are derived from. */
  readonly uniqueKey: string;
  readonly #directory: ObjectDirectory;
  readonly #jurisdiction: DurableObjectJurisdiction | undefined;
  /** Set on the copy an object gets in its env: its stubs' calls wait for its writes. */
  readonly #owner: OutputGate | undefined;

  /** @internal */
  constructor(uniqueKey: string, directory: ObjectDirectory, jurisdiction?: DurableObjectJurisdiction, owner?: OutputGate) {
    this.uniqueKey = uniqueKey;
    this.#directory = directory;
    this.#jurisdiction = jurisdiction;
    this.#owner = owner;
  }

  /** @internal This namespace as seen by an object: calls through its stubs are outputs of `owner`. */
  _ownedBy(owner: OutputGate): DurableObjectNamespace<T> {
    return new DurableObjectNamespace<T>(this.uniqueKey, this.#directory, this.#jurisdiction, owner);
  }

  /** @internal An id read back from storage (the alarm index): hex digits, and the name if known. */
  _storedId(hex: string, name: string | undefined): DurableObjectId {
    const parsed = native.parseId(this.uniqueKey, hex);
    return new DurableObjectId(this, parsed.hex, name, parsed.jurisdiction ?? undefined);
  }

  /** @internal The ids of this namespace's objects that have storage (testing's listDurableObjectIds). */
  _storedIds(): DurableObjectId[] {
    return this.#directory.storedIds(this.uniqueKey).map((hex) => this._storedId(hex, undefined));
  }

  /** The same name always gives the same id here (and a different one per jurisdiction). */
  idFromName(name: string): DurableObjectId {
    name = String(name);
    // A name with a lone surrogate goes over as WTF-8: workerd hashes it so, and napi's
    // string conversion would make it U+FFFD, merging names workerd keeps apart.
    const hex = name.isWellFormed()
      ? native.idFromName(this.uniqueKey, name, this.#jurisdiction)
      : native.idFromWtf8Name(this.uniqueKey, wtf8(name), this.#jurisdiction);
    return new DurableObjectId(this, hex, name, this.#jurisdiction);
  }

  /** Parses an id's 64 hex digits; throws for malformed ids and ids of other namespaces. */
  idFromString(id: string): DurableObjectId {
    const parsed = native.parseId(this.uniqueKey, String(id));
    this.#checkJurisdiction(parsed.jurisdiction ?? undefined);
    return new DurableObjectId(this, parsed.hex, undefined, parsed.jurisdiction ?? undefined);
  }

  newUniqueId(options?: { jurisdiction?: DurableObjectJurisdiction }): DurableObjectId {
    let jurisdiction = this.#jurisdiction;
    if (options?.jurisdiction !== undefined) {
      const wanted = checkJurisdictionName(options.jurisdiction);
      if (jurisdiction !== undefined && wanted !== jurisdiction) {
        throw new TypeError(`This namespace is restricted to the jurisdiction "${jurisdiction}", not "${wanted}".`);
      }
      jurisdiction = wanted;
    }
    return new DurableObjectId(this, native.newUniqueId(this.uniqueKey, jurisdiction), undefined, jurisdiction);
  }

  /** A stub for `id`, synchronously. Creates nothing: the object starts on its first call. */
  get(id: DurableObjectId, _options?: { locationHint?: string }): DurableObjectStub<T> {
    if (!(id instanceof DurableObjectId)) throw new TypeError("get() expects a DurableObjectId.");
    if (id._namespace.uniqueKey !== this.uniqueKey) throw new TypeError("Durable Object ID is not valid for this namespace.");
    this.#checkJurisdiction(id.jurisdiction);
    const StubClass = this.#directory.stubClass(this.uniqueKey);
    return new StubClass(id, this.uniqueKey, this.#directory, this.#owner) as DurableObjectStub<T>;
  }

  getByName(name: string, options?: { locationHint?: string }): DurableObjectStub<T> {
    return this.get(this.idFromName(name), options);
  }

  /** The sub-namespace of one jurisdiction: its ids differ from this namespace's. */
  jurisdiction(jurisdiction: DurableObjectJurisdiction): DurableObjectNamespace<T> {
    if (this.#jurisdiction !== undefined) throw new Error("This namespace is already restricted to a jurisdiction.");
    return new DurableObjectNamespace<T>(this.uniqueKey, this.#directory, checkJurisdictionName(jurisdiction), this.#owner);
  }

  /** A restricted namespace takes only ids of its own jurisdiction; an unrestricted one takes any. */
  #checkJurisdiction(jurisdiction: string | undefined): void {
    if (this.#jurisdiction !== undefined && jurisdiction !== this.#jurisdiction) {
      throw new TypeError("Durable Object ID is not valid for this namespace.");
    }
  }
}

function checkJurisdictionName(jurisdiction: unknown): DurableObjectJurisdiction {
  if (typeof jurisdiction !== "string" || !JURISDICTIONS.includes(jurisdiction)) {
    throw new TypeError(`Invalid jurisdiction ${JSON.stringify(jurisdiction)}; expected one of "eu", "fedramp", "fedramp-high", "us".`);
  }
  return jurisdiction as DurableObjectJurisdiction;
}

/** A string's WTF-8 (UTF-8 that keeps lone surrogates, see wire.ts), in a fresh buffer. */
function wtf8(s: string): Uint8Array {
  const writer = new ByteWriter(s.length * 3 + 1);
  writer.wtf8(s);
  return writer.bytes.subarray(0, writer.length);
}
