// DurableObjectStub: how callers reach an object. `fetch()` has Fetch API semantics.
import type { DurableObjectId } from "./namespace.js";
import type { ObjectRuntime } from "./object-runtime.js";
import type { ObjectDirectory } from "./registry.js";

export class DurableObjectStub<T = unknown> {
  readonly id: DurableObjectId;
  readonly name: string | undefined;
  readonly #directory: ObjectDirectory;
  readonly #uniqueKey: string;
  /** The live object, looked up once (a stub is used for many calls). */
  #runtime: ObjectRuntime | undefined;

  /** @internal */
  constructor(id: DurableObjectId, uniqueKey: string, directory: ObjectDirectory) {
    this.id = id;
    this.name = id.name;
    this.#uniqueKey = uniqueKey;
    this.#directory = directory;
  }

  /**
   * Sends a request to the object's fetch() handler. As on Cloudflare (since 2021-11-10),
   * the URL must be absolute; its host only matters to the object's own routing.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    let request: Request;
    try {
      request = toRequest(input, init);
    } catch (e) {
      return Promise.reject(e);
    }
    return this._runtime().fetch(request);
  }

  /** @internal */
  _runtime(): ObjectRuntime {
    const runtime = this.#runtime;
    if (runtime !== undefined && !runtime.closed) return runtime;
    return (this.#runtime = this.#directory.runtime(this.#uniqueKey, this.id));
  }

  /** @internal marker for the type parameter */
  declare readonly __type?: T;
}

function toRequest(input: RequestInfo | URL, init: RequestInit | undefined): Request {
  if (input instanceof Request) return init === undefined ? input : new Request(input, init);
  const url = String(input);
  if (!URL.canParse(url)) throw new TypeError(`Fetch API cannot load: ${url}`);
  return new Request(url, init);
}
