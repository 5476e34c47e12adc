// Wrangler's `rules`: which non-JavaScript files a Worker imports, and as what. The
// project's rules come first, then Wrangler's defaults; the first rule of a type without
// `fallthrough = true` is the last of that type (later ones, defaults included, are
// dropped, with a warning unless it says `fallthrough = false`) — Wrangler's semantics.
// lib/cli/module-rules.ts matches files against the result.
import { ConfigError } from "./config.js";

/** The types that give a module's value; ESModule and CommonJS are JavaScript, which the runtime loads. */
export type RuleType = "Text" | "Data" | "CompiledWasm";

export interface ModuleRule {
  type: RuleType | "ESModule" | "CommonJS";
  globs: string[];
  fallthrough?: boolean;
}

export const DEFAULT_RULES: ModuleRule[] = [
  { type: "Text", globs: ["**/*.txt", "**/*.html", "**/*.sql"] },
  { type: "Data", globs: ["**/*.bin"] },
  { type: "CompiledWasm", globs: ["**/*.wasm", "**/*.wasm?module"] },
];

const TYPES = new Set(["ESModule", "CommonJS", "CompiledWasm", "Text", "Data"]);

/** Whether the rule gives a module's value (the others are JavaScript, which the runtime loads). */
export function givesValue(rule: ModuleRule): rule is ModuleRule & { type: RuleType } {
  return rule.type === "Text" || rule.type === "Data" || rule.type === "CompiledWasm";
}

/**
 * The extension a glob ends in ("**\/*.md" → ".md"), or undefined. Node's CommonJS loader
 * and Bun's plugins pick files by extension, so open-do takes only globs that end in one.
 */
export function ruleExtension(glob: string): string | undefined {
  return /(\.[A-Za-z0-9_-]+)(\?module)?$/.exec(glob)?.[1]?.toLowerCase();
}

/** Checks the config's `rules` and returns the rules that apply, with wrangler's warnings. */
export function resolveModuleRules(raw: unknown, label: string): { rules: ModuleRule[]; warnings: string[] } {
  if (raw === undefined) return { rules: DEFAULT_RULES, warnings: [] };
  if (!Array.isArray(raw)) throw new ConfigError(`${label}: "rules" must be a list.`);
  const user = raw.map((rule, i): ModuleRule => {
    const where = `${label}: rules[${i}]`;
    if (typeof rule !== "object" || rule === null) throw new ConfigError(`${where} must be a table with "type" and "globs".`);
    if (rule.type === "PythonModule" || rule.type === "PythonRequirement") {
      throw new ConfigError(`${where} is a ${rule.type} rule: open-do runs JavaScript and TypeScript Workers, not Python ones.`);
    }
    if (!TYPES.has(rule.type)) throw new ConfigError(`${where} has type ${JSON.stringify(rule.type)}; it must be one of ${[...TYPES].join(", ")}.`);
    if (!Array.isArray(rule.globs) || rule.globs.some((g: unknown) => typeof g !== "string")) {
      throw new ConfigError(`${where} needs "globs", a list of strings.`);
    }
    for (const glob of rule.globs as string[]) {
      if (ruleExtension(glob) === undefined) {
        throw new ConfigError(`${where}: the glob ${JSON.stringify(glob)} does not end in a file extension; open-do matches module rules by extension (e.g. "**/*.md").`);
      }
    }
    if (rule.fallthrough !== undefined && typeof rule.fallthrough !== "boolean") throw new ConfigError(`${where}: "fallthrough" must be true or false.`);
    return { type: rule.type, globs: rule.globs, fallthrough: rule.fallthrough };
  });

  const all = [...user, ...DEFAULT_RULES];
  const closedBy = new Map<string, number>(); // type → the index of the rule that ends its list
  const rules: ModuleRule[] = [];
  const warnings: string[] = [];
  all.forEach((rule, i) => {
    const closer = closedBy.get(rule.type);
    if (closer !== undefined) {
      if (all[closer]!.fallthrough !== false) {
        const which = i < user.length ? `The rule at position ${i}` : "The default rule";
        warnings.push(
          `open-do: ${which} ${JSON.stringify(rule)} has the same type as the rule at position ${closer} and is ignored; give that one \`fallthrough = true\` to use both, or \`fallthrough = false\` to silence this warning.`,
        );
      }
      return;
    }
    rules.push(rule);
    if (rule.fallthrough !== true) closedBy.set(rule.type, i);
  });
  return { rules, warnings };
}
