// Installs the globals Cloudflare code expects and Node and Bun lack (see installGlobals).
// Imported for its effect by the package's entry point and by cloudflare:workers.
import { installGlobals, Response } from "./response.js";
import { WebSocketPair, WebSocketRequestResponsePair } from "./websocket.js";

installGlobals({ Response, WebSocketPair, WebSocketRequestResponsePair });
