// Wrangler's default module rules: what `import x from "./file"` gives for a file that is
// not JavaScript. Text (.txt, .html, .sql) is the file's text, Data (.bin) an ArrayBuffer,
// CompiledWasm (.wasm) a WebAssembly.Module — so `import schema from "./schema.sql"`
// works under open-do as it does under `wrangler dev` and on Cloudflare.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export type ModuleRule = "text" | "data" | "wasm";

const RULES: Record<string, ModuleRule> = { ".txt": "text", ".html": "text", ".sql": "text", ".bin": "data", ".wasm": "wasm" };

/** The file name extensions the rules cover (with the dot). */
export const RULE_EXTENSIONS = Object.keys(RULES);

/** A filter matching the same files, for Bun's plugins. */
export const RULE_FILTER = new RegExp(`(${RULE_EXTENSIONS.map((e) => e.replace(".", "\\.")).join("|")})$`, "i");

/** The rule for a file path or file: URL, or undefined for modules the runtime loads itself. */
function ruleFor(file: string): ModuleRule | undefined {
  const dot = file.lastIndexOf(".");
  return dot < 0 ? undefined : RULES[file.slice(dot).toLowerCase()];
}

/** What the module's default export is. */
function moduleValue(rule: ModuleRule, bytes: Uint8Array): unknown {
  if (rule === "text") return new TextDecoder().decode(bytes);
  const copy = new Uint8Array(bytes); // a copy of its own: a Buffer's .buffer may be a shared pool
  return rule === "data" ? copy.buffer : new WebAssembly.Module(copy);
}

/** The default export of a file the rules cover (for CommonJS and Bun, which take values). */
export function ruleValue(file: string): unknown {
  return moduleValue(ruleFor(file)!, readFileSync(file));
}

/** What a loader hook returns for a file: URL the rules cover, or undefined for the others. */
export function ruleModule(url: string): { format: "module"; source: string; shortCircuit: true } | undefined {
  const rule = url.startsWith("file:") ? ruleFor(url) : undefined;
  if (rule === undefined) return undefined;
  return { format: "module", source: moduleSource(rule, readFileSync(fileURLToPath(url))), shortCircuit: true };
}

/** The same as an ES module's source text, for loader hooks. */
function moduleSource(rule: ModuleRule, bytes: Uint8Array): string {
  if (rule === "text") return `export default ${JSON.stringify(new TextDecoder().decode(bytes))};`;
  const decode = `Uint8Array.from(atob(${JSON.stringify(Buffer.from(bytes).toString("base64"))}), (c) => c.charCodeAt(0))`;
  return rule === "data" ? `export default ${decode}.buffer;` : `export default new WebAssembly.Module(${decode});`;
}
