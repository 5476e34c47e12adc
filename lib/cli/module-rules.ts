// Module rules: what `import x from "./file"` gives for a file that is not JavaScript, as
// Wrangler's `rules` say. Text is the file's text, Data an ArrayBuffer, CompiledWasm a
// WebAssembly.Module — so `import schema from "./schema.sql"` works under open-do as it
// does under `wrangler dev` and on Cloudflare. Which rules apply (the project's, then
// Wrangler's defaults) is decided in lib/wrangler/module-rules.ts; this file matches files
// against them and builds the modules.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import picomatch from "picomatch";
import { DEFAULT_RULES, givesValue, ruleExtension, type ModuleRule, type RuleType } from "../wrangler/module-rules.js";

interface CompiledRule {
  type: RuleType;
  matches: (relativePath: string) => boolean;
}

interface ActiveRules {
  /** Globs are relative to this folder (wrangler's base_dir: by default main's folder). */
  baseDir: string;
  rules: CompiledRule[];
}

function compile(rules: ModuleRule[], baseDir: string): ActiveRules {
  return {
    baseDir,
    rules: rules
      .filter(givesValue)
      // A "?module" suffix (Wrangler's import of x.wasm?module) names the same file.
      .map((rule) => ({ type: rule.type, matches: picomatch(rule.globs.map((g) => g.replace(/\?module$/, "")), { dot: true }) })),
  };
}

let active = compile(DEFAULT_RULES, process.cwd());

/** Applies `rules` (see lib/wrangler/module-rules.ts) to the modules loaded from now on. */
export function useModuleRules(rules: ModuleRule[], baseDir: string): void {
  active = compile(rules, baseDir);
}

/** The file name extensions (with the dot) that rules name: the only files they can match. */
export function ruleExtensions(rules: ModuleRule[] = DEFAULT_RULES): string[] {
  return [...new Set(rules.flatMap((rule) => rule.globs.map((glob) => ruleExtension(glob)!)))];
}

/**
 * The rule for a file (a path, or a file: URL with or without a query), or undefined for
 * modules the runtime loads itself. Paths are matched relative to the base folder; a file
 * outside it (a package in a parent folder's node_modules) as its path below the common
 * parent, so "**\/*.txt" covers it as Wrangler's bundler would.
 */
function ruleFor(file: string): RuleType | undefined {
  const relative = path.relative(active.baseDir, file).split(path.sep).join("/").replace(/^(\.\.\/)+/, "");
  return active.rules.find((rule) => rule.matches(relative))?.type;
}

/** What the module's default export is. */
function moduleValue(rule: RuleType, bytes: Uint8Array): unknown {
  if (rule === "Text") return new TextDecoder().decode(bytes);
  const copy = new Uint8Array(bytes); // a copy of its own: a Buffer's .buffer may be a shared pool
  return rule === "Data" ? copy.buffer : new WebAssembly.Module(copy);
}

/**
 * The default export of a file if a rule covers it (for CommonJS and Bun, which take
 * values), or `none` when no rule does.
 */
export function ruleValue(file: string, none: unknown): unknown {
  const rule = ruleFor(file);
  return rule === undefined ? none : moduleValue(rule, readFileSync(file));
}

/** What a loader hook returns for a file: URL the rules cover, or undefined for the others. */
export function ruleModule(url: string): { format: "module"; source: string; shortCircuit: true } | undefined {
  if (!url.startsWith("file:")) return undefined;
  const file = fileURLToPath(new URL(url.replace(/[?#].*$/, "")));
  const rule = ruleFor(file);
  if (rule === undefined) return undefined;
  return { format: "module", source: moduleSource(rule, readFileSync(file)), shortCircuit: true };
}

/** The same as an ES module's source text, for loader hooks. */
function moduleSource(rule: RuleType, bytes: Uint8Array): string {
  if (rule === "Text") return `export default ${JSON.stringify(new TextDecoder().decode(bytes))};`;
  const decode = `Uint8Array.from(atob(${JSON.stringify(Buffer.from(bytes).toString("base64"))}), (c) => c.charCodeAt(0))`;
  return rule === "Data" ? `export default ${decode}.buffer;` : `export default new WebAssembly.Module(${decode});`;
}
