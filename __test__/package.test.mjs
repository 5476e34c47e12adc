// The package as a user installs it: `npm pack` of this package (JS, types, CLI) and of its
// platform package (npm/<platform>/, which carries the addon, as napi-rs publishes it),
// installed into a new project where the README's example runs — so a file missing from
// "files", or an addon the installed package cannot find, fails here rather than for users.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.join(import.meta.dirname, "..");
const inRepo = (...p) => path.join(root, ...p);

// Packing and installing take a while and do not depend on the runtime under test, so the
// Node 22 run does it once and runs the example on all three runtimes.
const once = process.versions.bun === undefined && process.versions.node.startsWith("22.");

function sh(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 240_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} (in ${cwd}) failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The README's code block that follows `heading` (a line of the README, start of it). */
function readmeBlock(readme, heading) {
  const at = readme.indexOf(heading);
  assert.notEqual(at, -1, `the README has "${heading}"`);
  const block = /```typescript\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, `a typescript block follows "${heading}"`);
  return block[1];
}

test(
  "the packed packages install into a new project, where the README's example runs on Node 22, Node 24 and Bun",
  { skip: once ? false : "packed and installed once, by the Node 22 run", timeout: 600_000 },
  () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "open-do-package-"));
    try {
      // The platform package napi-rs would publish: npm/<platform>/ plus the built addon.
      const platforms = fs.readdirSync(inRepo("npm")).filter((p) => fs.existsSync(inRepo(`open-do.${p}.node`)));
      assert.equal(platforms.length, 1, "one built addon with its npm/<platform> package");
      const platform = path.join(tmp, "platform");
      fs.cpSync(inRepo("npm", platforms[0]), platform, { recursive: true });
      fs.copyFileSync(inRepo(`open-do.${platforms[0]}.node`), path.join(platform, `open-do.${platforms[0]}.node`));
      const platformTarball = path.join(tmp, sh("npm", ["pack", "--pack-destination", tmp], platform).trim().split("\n").at(-1));
      const mainTarball = path.join(tmp, sh("npm", ["pack", "--ignore-scripts", "--pack-destination", tmp], root).trim().split("\n").at(-1));

      const app = path.join(tmp, "app");
      fs.mkdirSync(app);
      fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
      const readme = fs.readFileSync(inRepo("README.md"), "utf8");
      fs.writeFileSync(path.join(app, "MyObject.ts"), readmeBlock(readme, "Define your Durable Object class"));
      fs.writeFileSync(path.join(app, "main.ts"), readmeBlock(readme, "### Instantiating and using the object"));
      sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", platformTarball, mainTarball], app);

      const installed = path.join(app, "node_modules", "@redwoodjs", "open-do");
      assert.equal(fs.readdirSync(installed).some((f) => f.endsWith(".node")), false, "the addon comes from the platform package");
      assert.match(sh(path.join(app, "node_modules", ".bin", "open-do"), ["--help"], app), /open-do serve/);

      // The example's counter lives in .open-do/ of the project: each run adds one.
      const runs = [
        ["Node 22", inRepo("node_modules", "node22", "bin", "node"), ["--import", "tsx", "main.ts"]],
        ["Node 24", inRepo("node_modules", "node24", "bin", "node"), ["--import", "tsx", "main.ts"]],
        ["Bun", inRepo("node_modules", ".bin", "bun"), ["main.ts"]],
      ];
      for (const [i, [name, runtime, args]] of runs.entries()) {
        assert.equal(sh(runtime, args, app).trim(), String(i + 1), `${name} ran the example`);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
);
