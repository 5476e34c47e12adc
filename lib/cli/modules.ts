// Making a Worker's imports resolve under Node and Bun: `cloudflare:workers` becomes our
// compatibility module, and TypeScript mains run (Bun natively, Node through tsx).
import * as nodeModule from "node:module";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as compat from "../cloudflare-workers.js";

const require = createRequire(import.meta.url);
const compatUrl = new URL("../cloudflare-workers.js", import.meta.url).href;

declare const Bun: { plugin(plugin: { name: string; setup(build: any): void }): void } | undefined;

let installed = false;
let typescriptInstalled = false;

/**
 * Installs the resolution of `cloudflare:workers`, and on Node TypeScript support when
 * the main module is TypeScript (a JavaScript Worker is ESM as it is). Idempotent.
 */
export async function installModuleHooks(typescript: boolean): Promise<void> {
  if (!installed) {
    installed = true;
    installResolution();
  }
  if (!typescript || typescriptInstalled || typeof Bun !== "undefined") return;
  typescriptInstalled = true;
  // tsx runs .ts/.tsx/.mts/.cts modules and what they import.
  const tsx = require.resolve("tsx/esm/api");
  const { register: registerTsx } = (await import(pathToFileURL(tsx).href)) as { register: () => unknown };
  registerTsx();
}

function installResolution(): void {
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
    });
  } else {
    nodeModule.register(new URL("./hooks.js", import.meta.url).href, { data: { compatUrl } });
  }
  // A TypeScript Worker in a package without "type": "module" (what `npm create
  // cloudflare` makes) is compiled to CommonJS by tsx, and Node 22 resolves that code's
  // require() calls without the hooks above: it would not find `cloudflare:workers`.
  // require() of our ES module gives the same instance `import` does (the one whose `env`
  // the CLI fills).
  const cjs = nodeModule.Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolveFilename = cjs._resolveFilename;
  const compatPath = fileURLToPath(compatUrl);
  cjs._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === "cloudflare:workers" ? compatPath : resolveFilename.call(this, request, ...rest);
  };
}
