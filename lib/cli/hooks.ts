// Node module customization hooks (module.register), for Nodes without module.registerHooks:
// `cloudflare:workers` resolves to our compatibility module, and text, data and WebAssembly
// files load as Wrangler's module rules say. Runs on Node's loader thread.
import type { ModuleRule } from "../wrangler/module-rules.js";
import { ruleModule, useModuleRules } from "./module-rules.js";

let compatUrl = "";

export function initialize(data: { compatUrl: string; rules: ModuleRule[]; baseDir: string }): void {
  compatUrl = data.compatUrl;
  useModuleRules(data.rules, data.baseDir);
}

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: unknown, next: Next): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === "cloudflare:workers") return { url: compatUrl, shortCircuit: true };
  return next(specifier, context);
}

type NextLoad = (url: string, context: unknown) => Promise<unknown>;

export async function load(url: string, context: unknown, next: NextLoad): Promise<unknown> {
  return ruleModule(url) ?? next(url, context);
}
