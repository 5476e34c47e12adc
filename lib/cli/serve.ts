// `open-do serve`: runs a Worker project's default export and its Durable Objects, from
// its wrangler config, with its data in wrangler's local state folder.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { env as workerEnv, pendingWork, WorkerEntrypoint } from "../cloudflare-workers.js";
import { OpenDO } from "../durable-object.js";
import { Registry } from "../registry.js";
import type { ExecutionContext, FetchHandler, Server } from "../server.js";
import { compatFlags } from "../wrangler/compat.js";
import { ConfigError, readConfig, type WorkerConfig } from "../wrangler/config.js";
import { readLocalSecrets } from "../wrangler/local-secrets.js";
import { installModuleHooks } from "./modules.js";

export interface ServeOptions {
  dir?: string;
  port?: number;
  hostname?: string;
  /** Default: <dir>/.wrangler/state/v3/do, where wrangler dev keeps Durable Objects. */
  dataDir?: string;
  env?: string;
  /** Where warnings go (default console.warn). */
  warn?: (line: string) => void;
}

export interface Serving {
  config: WorkerConfig;
  registry: Registry;
  server: Server;
  close(): Promise<void>;
}

/** Starts serving the project in `options.dir`. Throws ConfigError for anything the user must fix. */
export async function serve(options: ServeOptions = {}): Promise<Serving> {
  const config = readConfig(options.dir ?? ".", options.env);
  // Told once the project is up: a failure to start is then the only line.
  const warnings: string[] = [];
  for (const [kind, name] of config.unsupported) {
    warnings.push(`open-do: ${kind} ${name} is not provided by open-do; env.${name} is undefined.`);
  }
  const flags = compatFlags(config.compatibilityDate, config.compatibilityFlags);
  if (config.compatibilityDate === undefined) warnings.push("open-do: no compatibility_date in the config; using today's.");
  warnings.push(...config.warnings);

  const secrets = readLocalSecrets(config.dir, options.env);
  if (secrets.files.length > 0) warnings.push(`open-do: using secrets defined in ${secrets.files.join(", ")}.`);

  const dataDir = options.dataDir ?? path.join(config.dir, ".wrangler", "state", "v3", "do");
  const exports: Record<string, unknown> = {};
  const registry = new Registry({ dataDir, env: workerEnv, compatibility: flags, exports });

  // What `import { env } from "cloudflare:workers"` sees, complete before the module runs
  // (as on Cloudflare, its top level may read env): vars, local secrets, and the Durable
  // Object namespaces, whose classes the module is about to give.
  for (const key of Object.keys(workerEnv)) delete workerEnv[key];
  Object.assign(workerEnv, config.vars, secrets.values);
  for (const binding of config.durableObjects) workerEnv[binding.name] = registry.reserveNamespace(uniqueKey(config, binding.className));

  await installModuleHooks(config.moduleRules, config.baseDir);
  let mod: Record<string, unknown>;
  try {
    mod = moduleExports(await import(pathToFileURL(config.main).href));
  } catch (error) {
    await registry.close();
    throw new ConfigError(`Loading ${path.relative(process.cwd(), config.main) || config.main} failed: ${(error as Error)?.stack ?? error}`);
  }

  for (const binding of config.durableObjects) {
    const Class = mod[binding.className];
    if (typeof Class !== "function") {
      await registry.close();
      throw new ConfigError(
        `The Durable Object binding ${binding.name} names class ${binding.className}, but ${path.basename(config.main)} exports no such class.`,
      );
    }
    // The reserved namespace, now with its class (the same object env already holds).
    workerEnv[binding.name] = registry.namespace(Class as new (...args: any[]) => object, { uniqueKey: uniqueKey(config, binding.className), storage: binding.storage });
  }

  let fetch: FetchHandler;
  try {
    fetch = workerFetch(mod.default, config);
  } catch (error) {
    await registry.close();
    throw error;
  }
  fillExports(exports, mod, config, registry, fetch);
  const port = options.port ?? 8787;
  const hostname = options.hostname ?? "127.0.0.1";
  let server: Server;
  try {
    server = await registry.listen({ port, hostname, fetch, env: workerEnv });
  } catch (error) {
    await registry.close();
    // Most often another dev server on the same port.
    throw new ConfigError(`Cannot listen on ${hostname}:${port}: ${(error as Error).message}. Choose another port with --port.`);
  }
  const warn = options.warn ?? ((line: string) => console.warn(line));
  for (const line of warnings) warn(line);
  return {
    config,
    registry,
    server,
    async close() {
      await registry.close();
      await pendingWork();
    },
  };
}

/** Miniflare's namespace key: a project's objects keep their ids and files under wrangler dev and here. */
function uniqueKey(config: WorkerConfig, className: string): string {
  return `${config.name}-${className}`;
}

/**
 * ctx.exports: a namespace for each exported Durable Object class that has storage (bound,
 * or created by a migration), and the default export as a Fetcher.
 */
function fillExports(exports: Record<string, unknown>, mod: Record<string, unknown>, config: WorkerConfig, registry: Registry, fetch: FetchHandler): void {
  for (const [name, value] of Object.entries(mod)) {
    if (name === "default" || typeof value !== "function" || !(value.prototype instanceof OpenDO)) continue;
    const storage = config.classes.get(name) ?? config.durableObjects.find((b) => b.className === name)?.storage;
    if (storage === undefined) continue;
    exports[name] = registry.namespace(value as new (...args: any[]) => object, { uniqueKey: uniqueKey(config, name), storage });
  }
  exports.default = {
    fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      const ctx: ExecutionContext = { waitUntil: () => {}, passThroughOnException: () => {}, props: {}, exports };
      return Promise.resolve(fetch(new Request(input, init), workerEnv, ctx));
    },
  };
}

/**
 * The module's exports as a Worker module declares them. A package without
 * "type": "module" makes tsx compile TypeScript to CommonJS; its exports then arrive as
 * `default` with an `__esModule` marker, and are unwrapped here.
 */
function moduleExports(namespace: Record<string, any>): Record<string, unknown> {
  const inner = namespace.default;
  if (inner !== null && typeof inner === "object" && inner.__esModule === true) return inner;
  return namespace;
}

/** The fetch handler of a Worker's default export: an object with fetch(), or a WorkerEntrypoint class. */
function workerFetch(worker: unknown, config: WorkerConfig): FetchHandler {
  const file = path.basename(config.main);
  if (typeof worker === "function" && (worker.prototype instanceof WorkerEntrypoint || typeof worker.prototype?.fetch === "function")) {
    if (worker.prototype instanceof OpenDO) throw new ConfigError(`The default export of ${file} is a Durable Object class, not a Worker.`);
    const Entrypoint = worker as new (ctx: ExecutionContext, env: unknown) => { fetch?: (request: Request) => Response | Promise<Response> };
    return (request, env, ctx) => {
      const instance = new Entrypoint(ctx, env);
      if (typeof instance.fetch !== "function") throw new TypeError(`The default export of ${file} has no fetch() method.`);
      return instance.fetch(request);
    };
  }
  const handler = (worker as { fetch?: unknown } | undefined)?.fetch;
  if (typeof handler !== "function") {
    throw new ConfigError(`${file} has no default export with a fetch(request, env, ctx) handler, so there is nothing to serve.`);
  }
  return (request, env, ctx) => handler.call(worker, request, env, ctx);
}
