// Reading a Worker project's wrangler configuration (wrangler.json, wrangler.jsonc or
// wrangler.toml) the way wrangler does: the keys open-do serves, named environments with
// their inheritance rules, and clear errors for what it cannot serve.
import fs from "node:fs";
import path from "node:path";
import { parse as parseJsonc, printParseErrorCode, type ParseError } from "jsonc-parser";
import { parse as parseToml } from "smol-toml";
import { declaredExports, replayMigrations, type Migration, type StorageBackend } from "./migrations.js";
import { resolveModuleRules, type ModuleRule } from "./module-rules.js";

/** wrangler's search order. */
export const CONFIG_FILES = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/** A problem with the project, told in one line. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface DurableObjectBinding {
  /** The `env` key. */
  name: string;
  /** The exported class. */
  className: string;
  /** SQLite-backed (`new_sqlite_classes`, `"storage": "sqlite"`) or KV-backed (`new_classes`, `"legacy-kv"`, or neither). */
  storage: StorageBackend;
}

export interface WorkerConfig {
  /** The config file read. */
  file: string;
  /** The project folder. */
  dir: string;
  /** The Worker's name (`<name>-<env>` in a named environment, as wrangler names it). */
  name: string;
  /** The main module, absolute. */
  main: string;
  compatibilityDate: string | undefined;
  compatibilityFlags: string[];
  vars: Record<string, unknown>;
  durableObjects: DurableObjectBinding[];
  /** Every class the migrations (or `exports`) leave alive, with its backend (bound or not). */
  classes: Map<string, StorageBackend>;
  /** Bindings of other products, which open-do does not provide: [kind, name]. */
  unsupported: [string, string][];
  /** The module rules that apply (the project's `rules`, then Wrangler's defaults). */
  moduleRules: ModuleRule[];
  /** The folder rules' globs are relative to: `base_dir`, or main's folder. */
  baseDir: string;
  /** What wrangler would warn about in this config. */
  warnings: string[];
}

/** Binding kinds of other Cloudflare products, by config key. */
const OTHER_BINDINGS: Record<string, string> = {
  kv_namespaces: "KV namespace",
  r2_buckets: "R2 bucket",
  d1_databases: "D1 database",
  services: "service binding",
  queues: "queue",
  vectorize: "Vectorize index",
  hyperdrive: "Hyperdrive config",
  analytics_engine_datasets: "Analytics Engine dataset",
  ai: "Workers AI binding",
  browser: "Browser Rendering binding",
  send_email: "email binding",
  workflows: "Workflow",
};

/** Finds and reads the config of the project in `dir`, for environment `envName` if given. */
export function readConfig(dir: string, envName?: string): WorkerConfig {
  const root = path.resolve(dir);
  const file = CONFIG_FILES.map((f) => path.join(root, f)).find((f) => fs.existsSync(f));
  if (file === undefined) {
    throw new ConfigError(`No wrangler config in ${root} (looked for ${CONFIG_FILES.join(", ")}).`);
  }
  const raw = parseFile(file);
  return resolveConfig(raw, file, envName);
}

function parseFile(file: string): Record<string, any> {
  const text = fs.readFileSync(file, "utf8");
  const name = path.basename(file);
  if (file.endsWith(".toml")) {
    try {
      return parseToml(text) as Record<string, any>;
    } catch (e) {
      throw new ConfigError(`${name}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const { error, offset } = errors[0]!;
    const line = text.slice(0, offset).split("\n").length;
    throw new ConfigError(`${name}:${line}: ${printParseErrorCode(error)}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new ConfigError(`${name}: the config must be an object.`);
  return value;
}

/** Applies wrangler's environment rules and checks what open-do needs. */
export function resolveConfig(raw: Record<string, any>, file: string, envName?: string): WorkerConfig {
  const label = path.basename(file);
  let section = raw;
  if (envName !== undefined) {
    section = raw.env?.[envName];
    if (section === undefined || section === null || typeof section !== "object") {
      const known = Object.keys(raw.env ?? {});
      throw new ConfigError(`${label} has no environment "${envName}"${known.length ? ` (it has: ${known.join(", ")})` : ""}.`);
    }
  }
  // Inheritable keys fall back to the top level; bindings and vars do not (wrangler's rule).
  const inherited = (key: string) => (section[key] !== undefined ? section[key] : raw[key]);
  const baseName = typeof raw.name === "string" ? raw.name : path.basename(path.dirname(file));
  const name = envName === undefined ? baseName : typeof section.name === "string" ? section.name : `${baseName}-${envName}`;
  const main = inherited("main");
  if (typeof main !== "string" || main === "") {
    throw new ConfigError(`${label} has no "main": open-do serve runs the Worker module it names.`);
  }
  const mainPath = path.resolve(path.dirname(file), main);
  if (!fs.existsSync(mainPath)) throw new ConfigError(`${label}: "main" is ${main}, which does not exist.`);

  const flags = inherited("compatibility_flags") ?? [];
  if (!Array.isArray(flags) || flags.some((f) => typeof f !== "string")) throw new ConfigError(`${label}: "compatibility_flags" must be a list of strings.`);
  const date = inherited("compatibility_date");
  if (date !== undefined && (typeof date !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(date))) {
    throw new ConfigError(`${label}: "compatibility_date" must look like 2026-01-31.`);
  }

  const migrations: Migration[] = raw.migrations ?? [];
  if (!Array.isArray(migrations)) throw new ConfigError(`${label}: "migrations" must be a list.`);
  if (envName !== undefined && section.migrations !== undefined) {
    throw new ConfigError(`${label}: "migrations" belongs at the top level; it applies to every environment.`);
  }
  if (envName !== undefined && section.exports !== undefined) {
    throw new ConfigError(`${label}: "exports" belongs at the top level; it applies to every environment.`);
  }
  if (raw.exports !== undefined && migrations.length > 0) {
    throw new ConfigError(`${label}: "exports" and "migrations" both describe the Durable Object classes; use one of them.`);
  }
  const backends = raw.exports !== undefined ? declaredExports(raw.exports, label) : replayMigrations(migrations, label);

  const bindings = section.durable_objects?.bindings ?? [];
  if (!Array.isArray(bindings)) throw new ConfigError(`${label}: "durable_objects.bindings" must be a list.`);
  const durableObjects = bindings.map((b: any): DurableObjectBinding => {
    if (typeof b?.name !== "string" || typeof b?.class_name !== "string") {
      throw new ConfigError(`${label}: each Durable Object binding needs a "name" and a "class_name".`);
    }
    if (b.script_name !== undefined && b.script_name !== name && b.script_name !== baseName) {
      throw new ConfigError(
        `Durable Object binding ${b.name} uses class ${b.class_name} of another Worker ("script_name": "${b.script_name}"): open-do serve runs one Worker and does not support that yet.`,
      );
    }
    return { name: b.name, className: b.class_name, storage: backends.get(b.class_name) ?? "kv" };
  });

  const { rules: moduleRules, warnings } = resolveModuleRules(inherited("rules"), label);
  // Bindings and vars are not inherited: an environment without them has none (wrangler
  // serves it so, and warns).
  if (envName !== undefined) {
    for (const key of ["vars", "durable_objects", ...Object.keys(OTHER_BINDINGS)]) {
      if (raw[key] !== undefined && section[key] === undefined) {
        warnings.push(
          `open-do: "${key}" exists at the top level of ${label}, but not on "env.${envName}"; it is not inherited by environments, so env.${envName} has none. Add "${key}" to "env.${envName}" if it should.`,
        );
      }
    }
  }
  const baseDir = inherited("base_dir");
  if (baseDir !== undefined && typeof baseDir !== "string") throw new ConfigError(`${label}: "base_dir" must be a path.`);

  const vars = section.vars ?? {};
  if (typeof vars !== "object" || Array.isArray(vars)) throw new ConfigError(`${label}: "vars" must be a table of names and values.`);

  const unsupported: [string, string][] = [];
  for (const [key, kind] of Object.entries(OTHER_BINDINGS)) {
    const value = section[key];
    if (value === undefined) continue;
    const list = Array.isArray(value) ? value : [value];
    for (const item of list) unsupported.push([kind, String(item?.binding ?? item?.name ?? key)]);
  }

  return {
    file,
    dir: path.dirname(file),
    name,
    main: mainPath,
    compatibilityDate: date,
    compatibilityFlags: flags,
    vars,
    durableObjects,
    classes: backends,
    unsupported,
    moduleRules,
    baseDir: baseDir === undefined ? path.dirname(mainPath) : path.resolve(path.dirname(file), baseDir),
    warnings,
  };
}
