// Making a Worker's imports resolve under Node and Bun: `cloudflare:workers` becomes our
// compatibility module, TypeScript mains run (Bun natively, Node through tsx), and text,
// data and WebAssembly files import as Wrangler's module rules say (module-rules.ts).
import { readFileSync } from "node:fs";
import * as nodeModule from "node:module";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as compat from "../cloudflare-workers.js";
import { DEFAULT_RULES, type ModuleRule } from "../wrangler/module-rules.js";
import { ruleExtensions, ruleModule, ruleValue, useModuleRules } from "./module-rules.js";

const require = createRequire(import.meta.url);
const compatUrl = new URL("../cloudflare-workers.js", import.meta.url).href;

declare const Bun: { plugin(plugin: { name: string; setup(build: any): void }): void } | undefined;

let installed = false;

/**
 * Installs the resolution of `cloudflare:workers`, the module `rules` (relative to
 * `baseDir`) for the modules loaded from now on, and, on Node, tsx: Wrangler bundles a
 * Worker with esbuild, so its modules may be TypeScript, import each other without file
 * extensions (`./lib/util`) and sit in a package without "type": "module". tsx's ESM
 * and CommonJS hooks give Node the same freedom (Bun has it natively). The hooks are
 * installed once; a later call only changes the rules.
 */
export async function installModuleHooks(rules: ModuleRule[] = DEFAULT_RULES, baseDir = process.cwd()): Promise<void> {
  useModuleRules(rules, baseDir);
  coverExtensions(ruleExtensions(rules));
  if (installed) return;
  installed = true;
  installResolution(baseDir, rules);
  if (typeof Bun !== "undefined") return;
  for (const api of ["tsx/esm/api", "tsx/cjs/api"]) {
    const { register } = (await import(pathToFileURL(require.resolve(api)).href)) as { register: () => unknown };
    register();
  }
}

/** Extensions whose files pass through our CommonJS handler or Bun plugin. */
const covered = new Set<string>();

/**
 * Node's CommonJS loader and Bun's plugins choose files by extension, fixed when the
 * handler is registered: each extension a rule names gets one, which asks the rules in
 * force when a file loads and otherwise loads it as the runtime would have.
 */
function coverExtensions(extensions: string[]): void {
  const fresh = extensions.filter((e) => !covered.has(e));
  if (fresh.length === 0) return;
  for (const e of fresh) covered.add(e);
  if (typeof Bun !== "undefined") {
    const filter = new RegExp(`(${fresh.map((e) => e.replace(/[.]/g, "\\.")).join("|")})$`, "i");
    Bun.plugin({
      name: `open-do: module rules (${fresh.join(" ")})`,
      setup(build) {
        build.onLoad({ filter }, ({ path, loader }: { path: string; loader: string }) => {
          const value = ruleValue(path, NO_RULE);
          return value === NO_RULE ? { contents: readFileSync(path), loader } : { exports: { default: value }, loader: "object" };
        });
      },
    });
    return;
  }
  const cjs = nodeModule.Module as unknown as { _extensions: Record<string, CommonJsHandler> };
  for (const extension of fresh) {
    const fallback = cjs._extensions[extension] ?? cjs._extensions[".js"]!;
    cjs._extensions[extension] = (module, filename) => {
      const value = ruleValue(filename, NO_RULE);
      if (value === NO_RULE) fallback(module, filename);
      else module.exports = value;
    };
  }
}

type CommonJsHandler = (module: { exports: unknown }, filename: string) => void;
const NO_RULE = Symbol("no rule");

function installResolution(baseDir: string, rules: ModuleRule[]): void {
  if (typeof Bun !== "undefined") {
    Bun.plugin({
      name: "open-do: cloudflare:workers",
      setup(build) {
        // The same module instance the CLI fills `env` in.
        build.module("cloudflare:workers", () => ({ exports: compat, loader: "object" }));
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
    // On the loader thread: the rules of the first serve (a later one in this process
    // cannot change them there).
    nodeModule.register(new URL("./hooks.js", import.meta.url).href, { data: { compatUrl, rules, baseDir } });
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
  };
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
