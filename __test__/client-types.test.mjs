// `@redwoodjs/open-do/client`'s stubs take their TypeScript types from the object's class:
// tsc checks __test__/fixtures/client-types (right uses compile, wrong ones are errors).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

test("remote stubs are typed from the class: methods with their arguments and results, nothing else", () => {
  const r = spawnSync(process.execPath, [tsc, "-p", path.join(here, "fixtures", "client-types")], { encoding: "utf8" });
  assert.equal(r.status, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
});
