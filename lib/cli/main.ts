// The `open-do` command.
import { parseArgs } from "node:util";
import { ConfigError } from "../wrangler/config.js";
import { CODE_UPDATED, runtimeError } from "../errors.js";
import { serve } from "./serve.js";
import { watch } from "./watch.js";

const HELP = `open-do — Cloudflare Durable Objects on Node.js and Bun

Usage:
  open-do serve [dir] [options]   Serve the Worker project in dir (default: .)
  open-do --help                  Show this help

Serve options:
  --port <n>        Port to listen on (default 8787, as wrangler dev; 0 picks a free one)
  --ip <address>    Address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)
  --data-dir <dir>  Where objects keep their data (default <dir>/.wrangler/state/v3/do,
                    shared with wrangler dev)
  --env <name>      Use the named environment of the wrangler config
  --watch           Reload when a file of the project changes: objects are reset
                    (calls in flight fail with "Durable Object reset because its code
                    was updated.") and the new code serves the same port

open-do serve reads wrangler.json, wrangler.jsonc or wrangler.toml: "main" (JavaScript or
TypeScript), "durable_objects.bindings", "migrations" (SQLite- or KV-backed classes),
"vars", "compatibility_date" and "compatibility_flags", and [env.<name>] sections.
The main module's default export serves HTTP and WebSockets; "cloudflare:workers"
imports resolve to open-do.
`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        port: { type: "string" },
        ip: { type: "string" },
        "data-dir": { type: "string" },
        env: { type: "string", short: "e" },
        watch: { type: "boolean" },
      },
    });
  } catch (error) {
    console.error(`open-do: ${(error as Error).message}\nRun open-do --help for the options.`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, dir, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command !== "serve") {
    console.error(`open-do: unknown command "${command}". Run open-do --help.`);
    return 2;
  }
  if (rest.length > 0) {
    console.error(`open-do: serve takes one folder, not ${positionals.length - 1}.`);
    return 2;
  }
  const port = values.port === undefined ? 8787 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`open-do: --port must be a number from 0 to 65535, not "${values.port}".`);
    return 2;
  }
  if (values.watch) {
    const args: string[] = [];
    if (values.ip !== undefined) args.push("--ip", values.ip);
    if (values["data-dir"] !== undefined) args.push("--data-dir", values["data-dir"]);
    if (values.env !== undefined) args.push("--env", values.env);
    return watch(dir ?? ".", args, port);
  }
  try {
    const serving = await serve({ dir: dir ?? ".", port, hostname: values.ip, dataDir: values["data-dir"], env: values.env });
    const names = serving.config.durableObjects.map((b) => `${b.name} (${b.className}, ${b.storage === "sqlite" ? "SQLite" : "KV"})`);
    if (names.length > 0) console.log(`open-do: Durable Objects: ${names.join(", ")}`);
    console.log(`open-do: ${serving.config.name} ready on ${serving.server.url}`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
      // From --watch: the code changed. Calls in flight fail as on a deploy.
      process.once("SIGHUP", () => {
        serving.registry.resetAll(runtimeError(CODE_UPDATED, { durableObjectReset: true }));
        resolve();
      });
    });
    await serving.close();
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`open-do: ${error.message}`);
      return 1;
    }
    throw error;
  }
}
