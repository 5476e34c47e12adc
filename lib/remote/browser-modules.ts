// The client, served to browsers by registry.listen() next to the RPC endpoint, so that a
// page needs no bundler:
//
//   <script type="module">
//     import { connect } from "/.open-do/client.js";
//     const rooms = connect(location.origin).namespace("ChatRoom");
//   </script>
//
// Our client's modules and capnweb's browser build, as installed; the bare "capnweb"
// import is pointed at the copy served here.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where a page imports the client from. */
const CLIENT_MODULE_PATH = "/.open-do/client.js";
const CAPNWEB_PATH = "/.open-do/capnweb.js";

const files: Record<string, () => URL> = {
  [CLIENT_MODULE_PATH]: () => new URL("../client.js", import.meta.url),
  "/.open-do/remote/batched-transport.js": () => new URL("./batched-transport.js", import.meta.url),
  // capnweb's plain build, whatever the runtime resolves the package to (Bun: its own build).
  [CAPNWEB_PATH]: () => new URL("index.js", import.meta.resolve("capnweb")),
};

const cache = new Map<string, string>();

/** The module served at `path`, or undefined when `path` is not one of them. */
export function browserModule(path: string): string | undefined {
  const file = files[path];
  if (file === undefined) return undefined;
  let text = cache.get(path);
  if (text === undefined) {
    text = readFileSync(fileURLToPath(file()), "utf8")
      .replaceAll(/from\s*"capnweb"/g, `from "${CAPNWEB_PATH}"`)
      .replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n");
    cache.set(path, text);
  }
  return text;
}
