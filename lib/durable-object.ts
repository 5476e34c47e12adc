// The base class of Durable Objects: Cloudflare's `DurableObject`, also exported as
// `OpenDO`, with the shortcuts the seed README uses (`this.storage`, `this.state`).
import type { DurableObjectState } from "./state.js";
import type { DurableObjectStorage } from "./storage.js";

export class OpenDO<Env = unknown> {
  protected ctx: DurableObjectState;
  protected env: Env;

  constructor(ctx: DurableObjectState, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }

  /** The same object as `this.ctx` (the name older Durable Object code uses). */
  protected get state(): DurableObjectState {
    return this.ctx;
  }
  // Older code assigns `this.state = state` itself; that must keep working.
  protected set state(value: DurableObjectState) {
    ownProperty(this, "state", value);
  }

  /** `this.ctx.storage`. */
  protected get storage(): DurableObjectStorage {
    return this.ctx.storage;
  }
  protected set storage(value: DurableObjectStorage) {
    ownProperty(this, "storage", value);
  }
}

function ownProperty(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

export { OpenDO as DurableObject };
