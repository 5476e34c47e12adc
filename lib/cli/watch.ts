// `open-do serve --watch`: the project runs in a child process that is replaced whenever
// a file of the project changes. The old one resets its objects first, so calls in flight
// fail with Cloudflare's "Durable Object reset because its code was updated."
// (`.durableObjectReset`), as on a deploy; the new one serves the same port.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "open-do.js");
/** Folders whose changes are not code changes. */
const IGNORED = new Set([".wrangler", "node_modules", ".git", ".open-do"]);

export async function watch(dir: string, args: string[], port: number): Promise<number> {
  let child: ChildProcess | undefined;
  let boundPort = port;
  let restarting = false;
  let again = false;

  const start = (): ChildProcess => {
    const proc = spawn(process.execPath, [CLI, "serve", dir, ...args, "--port", String(boundPort)], { stdio: ["ignore", "pipe", "inherit"] });
    proc.stdout!.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      process.stdout.write(text);
      const match = /ready on http:\/\/[^\s]*:(\d+)/.exec(text);
      if (match) boundPort = Number(match[1]); // port 0 picked one: keep it across reloads
    });
    return proc;
  };

  const stop = (proc: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill(signal);
    });

  const restart = async (changed: string) => {
    if (restarting) {
      again = true;
      return;
    }
    restarting = true;
    console.log(`open-do: ${changed} changed; reloading`);
    if (child !== undefined) await stop(child, "SIGHUP");
    child = start();
    restarting = false;
    if (again) {
      again = false;
      void restart("more files");
    }
  };

  let timer: ReturnType<typeof setTimeout> | undefined;
  const watcher = fs.watch(dir, { recursive: true }, (_event, filename) => {
    const name = String(filename ?? "");
    if (name.split(path.sep).some((part) => IGNORED.has(part))) return;
    clearTimeout(timer);
    timer = setTimeout(() => void restart(name), 100); // one reload for a burst of writes
  });

  child = start();
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  watcher.close();
  clearTimeout(timer);
  if (child !== undefined) await stop(child, "SIGTERM");
  return 0;
}
