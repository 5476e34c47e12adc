// A project's local secrets, read as `wrangler dev` reads them: `.dev.vars` next to the
// config (`.dev.vars.<env>` instead, for a named environment that has one); without such
// a file, the `.env` files (`.env`, `.env.<env>`, `.env.local`, `.env.<env>.local`, each
// overriding the ones before). Values are strings, in dotenv syntax, and join `env` over
// `vars` of the same name.
import fs from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";

export interface LocalSecrets {
  /** The files read, relative to the project folder. */
  files: string[];
  values: Record<string, string>;
}

export function readLocalSecrets(dir: string, envName?: string): LocalSecrets {
  const exists = (name: string) => fs.existsSync(path.join(dir, name));
  const devVars = [envName !== undefined ? `.dev.vars.${envName}` : undefined, ".dev.vars"].find((name) => name !== undefined && exists(name));
  const files =
    devVars !== undefined
      ? [devVars]
      : [".env", envName !== undefined ? `.env.${envName}` : undefined, ".env.local", envName !== undefined ? `.env.${envName}.local` : undefined].filter(
          (name): name is string => name !== undefined && exists(name),
        );
  const values: Record<string, string> = {};
  for (const name of files) Object.assign(values, parseEnv(fs.readFileSync(path.join(dir, name), "utf8")));
  return { files, values };
}
