// `cloudflare:workers` for code run by `open-do serve`: Node resolves the specifier here
// through module hooks, Bun through a runtime plugin (lib/cli/modules.ts).
import "./globals.js";
import { OpenDO } from "./durable-object.js";
import { RpcStub } from "./rpc/client.js";
import { RpcTarget } from "./rpc/target.js";
import type { ExecutionContext } from "./server.js";

export { OpenDO as DurableObject, RpcStub, RpcTarget };

/** The Worker's bindings, as `import { env } from "cloudflare:workers"` gives them. Filled by open-do serve. */
export const env: Record<string, unknown> = {};

/** Waits for promises handed to `waitUntil()` outside a request (kept until they settle). */
const pending = new Set<Promise<unknown>>();

/** Keeps `promise` running after the response; open-do serve waits for it on shutdown. */
export function waitUntil(promise: Promise<unknown>): void {
  const p = Promise.resolve(promise).catch((error) => console.error("A waitUntil() promise failed:", error));
  pending.add(p);
  p.finally(() => pending.delete(p));
}

/** @internal For open-do serve's shutdown. */
export function pendingWork(): Promise<unknown> {
  return Promise.allSettled([...pending]);
}

/** Cloudflare's base class for class-based Workers (`export default class extends WorkerEntrypoint`). */
export class WorkerEntrypoint<Env = unknown> {
  protected ctx: ExecutionContext;
  protected env: Env;
  constructor(ctx: ExecutionContext, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }
}
