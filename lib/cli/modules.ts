// Making a Worker's imports resolve under Node and Bun: `cloudflare:workers` becomes our
// compatibility module, TypeScript mains run (Bun natively, Node through tsx), and text,
// data and WebAssembly files import as Wrangler's module rules say (module-rules.ts).
import * as nodeModule from "node:module";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as compat from "../cloudflare-workers.js";
import { RULE_EXTENSIONS, RULE_FILTER, ruleModule, ruleValue } from "./module-rules.js";

const require = createRequire(import.meta.url);
const compatUrl = new URL("../cloudflare-workers.js", import.meta.url).href;

declare const Bun: { plugin(plugin: { name: string; setup(build: any): void }): void } | undefined;

let installed = false;

/**
 * Installs the resolution of `cloudflare:workers` and, on Node, tsx: Wrangler bundles a
 * Worker with esbuild, so its modules may be TypeScript, import each other without file
 * extensions (`./lib/util`) and sit in a package without "type": "module". tsx's ESM
 * and CommonJS hooks give Node the same freedom (Bun has it natively). Idempotent.
 */
export async function installModuleHooks(): Promise<void> {
  if (installed) return;
  installed = true;
  installResolution();
  if (typeof Bun !== "undefined") return;
  for (const api of ["tsx/esm/api", "tsx/cjs/api"]) {
    const { register } = (await import(pathToFileURL(require.resolve(api)).href)) as { register: () => unknown };
    register();
  }
}

function installResolution(): void {
  if (typeof Bun !== "undefined") {
    Bun.plugin({
      name: "open-do: cloudflare:workers",
      setup(build) {
        // The same module instance the CLI fills `env` in.
        build.module("cloudflare:workers", () => ({ exports: compat, loader: "object" }));
        build.onLoad({ filter: RULE_FILTER }, ({ path }: { path: string }) => ({
          exports: { default: ruleValue(path) },
          loader: "object",
        }));
      },
    });
    return;
  }
  // In-thread hooks (Node 22.15+) also cover require(); the loader-thread ones are the fallback.
  const registerHooks = (nodeModule as { registerHooks?: (hooks: object) => unknown }).registerHooks;
  if (typeof registerHooks === "function") {
    registerHooks({
      resolve(specifier: string, context: unknown, next: (s: string, c: unknown) => unknown) {
        if (specifier === "cloudflare:workers") return { url: compatUrl, shortCircuit: true };
        return next(specifier, context);
      },
      load(url: string, context: unknown, next: (u: string, c: unknown) => unknown) {
        return ruleModule(url) ?? next(url, context);
      },
    });
  } else {
    nodeModule.register(new URL("./hooks.js", import.meta.url).href, { data: { compatUrl } });
  }
  // A TypeScript Worker in a package without "type": "module" (what `npm create
  // cloudflare` makes) is compiled to CommonJS by tsx, and Node 22 resolves that code's
  // require() calls without the hooks above. So CommonJS resolution learns the name too,
  // and finds our module already in require's cache: the instance `import` gives (whose
  // `env` the CLI fills, whose DurableObject the registry knows), not a CommonJS copy.
  const cjs = nodeModule.Module as unknown as {
    new (id: string): { filename: string; loaded: boolean; exports: unknown };
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
    _cache: Record<string, unknown>;
    _extensions: Record<string, (module: { exports: unknown }, filename: string) => void>;
  };
  // The module rules for that CommonJS code's require() of a .sql file and the like.
  for (const extension of RULE_EXTENSIONS) {
    cjs._extensions[extension] = (module, filename) => {
      module.exports = ruleValue(filename);
    };
  }
  const compatPath = fileURLToPath(compatUrl);
  const cached = new cjs(compatPath);
  cached.filename = compatPath;
  cached.loaded = true;
  cached.exports = compat;
  cjs._cache[compatPath] = cached;
  const resolveFilename = cjs._resolveFilename;
  cjs._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === "cloudflare:workers" ? compatPath : resolveFilename.call(this, request, ...rest);
  };
}
