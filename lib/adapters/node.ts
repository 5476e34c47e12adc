// Serving objects from a Node `http` server you already run: its "request" and "upgrade"
// events, converted to a Worker-style fetch(request, env, ctx) and back. WebSocket
// framing is the `ws` package's; sockets accepted with ctx.acceptWebSocket() still
// hibernate (their state lives in Rust; only the connection is `ws`'s).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import { WebSocketServer, type RawData } from "ws";
import type { ExecutionContext, FetchHandler } from "../server.js";
import { DISCONNECTED, WebSocket } from "../websocket.js";

export interface NodeHandlerOptions {
  /** The `env` the handler receives. */
  env?: unknown;
}

export interface NodeHandler {
  /** For `http.createServer(handler.request)` or `server.on("request", ...)`. */
  request(req: IncomingMessage, res: ServerResponse): void;
  /** For `server.on("upgrade", handler.upgrade)`: WebSocket upgrades. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Adapts a Worker-style fetch handler to Node's http server events. */
export function nodeHandler(fetch: FetchHandler, options: NodeHandlerOptions = {}): NodeHandler {
  if (typeof fetch !== "function") throw new TypeError("nodeHandler() needs a fetch(request, env, ctx) handler.");
  const env = options.env ?? {};
  const protocols = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 32 << 20, // Cloudflare's received-message limit
    handleProtocols: (_offered, req) => protocols.get(req) ?? false,
  });
  const ctx: ExecutionContext = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} };

  async function respond(req: IncomingMessage): Promise<Response | undefined> {
    try {
      const response = await fetch(toRequest(req), env, ctx);
      if (!(response instanceof Response)) throw new TypeError("The fetch handler did not return a Response.");
      return response;
    } catch (error) {
      console.error("Uncaught exception in the fetch handler:", error);
      return undefined;
    }
  }

  return {
    request(req, res) {
      if (!hostIsValid(req)) return void res.writeHead(400, { "content-type": "text/plain;charset=UTF-8", connection: "close" }).end(BAD_HOST);
      void respond(req).then((response) => {
        const ws = (response as { webSocket?: WebSocket | null } | undefined)?.webSocket;
        if (ws instanceof WebSocket) {
          // A WebSocket for a request that is no upgrade: the object's end hears a
          // disconnect, and the client an error (as the built-in server answers).
          ws._neverConnected();
          return writeResponse(res, undefined);
        }
        return writeResponse(res, response);
      });
    },
    upgrade(req, socket, head) {
      // Node takes its own 'error' listener off the socket before 'upgrade', and `ws` adds
      // one only once handleUpgrade runs, after the Worker answered: a client that resets
      // meanwhile would raise an unhandled 'error' and end the process. Its 'close' follows.
      socket.on("error", () => {});
      // A handshake `ws` would refuse must not reach the Worker: an object that accepted
      // its WebSocket would hold a socket that never connects (and never closes).
      const refusal = hostIsValid(req) ? handshakeRefusal(req) : `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: ${BAD_HOST.length}\r\n\r\n${BAD_HOST}`;
      if (refusal !== undefined) return void socket.end(refusal);
      void respond(req).then((response) => {
        const ws = (response as { webSocket?: WebSocket | null } | undefined)?.webSocket;
        if (response === undefined || response.status !== 101 || !(ws instanceof WebSocket) || socket.destroyed) {
          // The object's end of a pair that never reaches the client hears a disconnect.
          if (ws instanceof WebSocket) ws._neverConnected();
          if (socket.destroyed) return;
          const status = response?.status ?? 500;
          socket.end(`HTTP/1.1 ${status === 101 ? 500 : status} ${status === 101 ? "Internal Server Error" : (response?.statusText ?? "Internal Server Error")}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          return;
        }
        const protocol = response.headers.get("sec-websocket-protocol");
        if (protocol !== null) protocols.set(req, protocol);
        const connection = ws._handOff();
        // The client may leave before the upgrade completes (ws then never calls back):
        // the server end hears a disconnect.
        let upgraded = false;
        socket.once("close", () => {
          if (!upgraded) connection.clientClosed(1006, DISCONNECTED, false);
        });
        wss.handleUpgrade(req, socket, head, (peer) => {
          upgraded = true;
          connection.attach({
            send: (data) => peer.send(data),
            close: (code, reason) => peer.close(code, reason),
          });
          peer.on("message", (data: RawData, binary: boolean) => {
            connection.fromClient(binary ? toArrayBuffer(data) : data.toString(), (reply) => peer.send(reply));
          });
          peer.on("close", (code: number, reason: Buffer) => {
            const clean = code !== 1006;
            connection.clientClosed(code, clean ? reason.toString() : "WebSocket disconnected without sending Close frame.", clean);
          });
          peer.on("error", () => {}); // followed by "close"
        });
      });
    },
  };
}

/**
 * The answer RFC 6455 §4.2 requires to a handshake we cannot accept (what the built-in
 * server answers too, see src/engine/net/request_checks.rs), or undefined.
 */
function handshakeRefusal(req: IncomingMessage): string | undefined {
  const refuse = (status: string, text: string) =>
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nSec-WebSocket-Version: 13\r\nContent-Length: ${text.length}\r\n\r\n${text}`;
  if (req.headers.upgrade?.toLowerCase() !== "websocket") return undefined; // the Worker decides
  const version = req.headers["sec-websocket-version"];
  if (req.method !== "GET" || req.httpVersion === "1.0") return refuse("400 Bad Request", "A WebSocket handshake needs GET and HTTP/1.1.\n");
  if (version === undefined) return refuse("400 Bad Request", "A WebSocket handshake needs Sec-WebSocket-Version: 13.\n");
  if (version !== "13") return refuse("426 Upgrade Required", "Only WebSocket version 13 is spoken here.\n");
  if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers["sec-websocket-key"] ?? "")) {
    return refuse("400 Bad Request", "A WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes in base64.\n");
  }
  return undefined;
}

const BAD_HOST = "The Host header is not a host name with an optional port.\n";

/**
 * Whether Host is RFC 9110's host [":" port], as the built-in server checks it
 * (request_checks.rs): the request's URL is built from it, and one carrying a path or a
 * query ("localhost/admin?") would move the request elsewhere.
 */
function hostIsValid(req: IncomingMessage): boolean {
  const host = req.headers.host;
  return host === undefined || /^(\[[0-9a-fA-F:.vV]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:\d{1,5})?$/.test(host);
}

function toRequest(req: IncomingMessage): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const url = `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`;
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const init: RequestInit & { duplex?: "half" } = { method, headers };
  if (hasBody) {
    init.body = Readable.toWeb(req) as unknown as BodyInit;
    init.duplex = "half";
  }
  return new Request(url, init);
}

function toArrayBuffer(data: RawData): ArrayBuffer {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
}

async function writeResponse(res: ServerResponse, response: Response | undefined): Promise<void> {
  if (response === undefined) {
    res.writeHead(500, { "content-type": "text/plain;charset=UTF-8" }).end("Internal Server Error");
    return;
  }
  const headers: [string, string][] = [];
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers.push([name, value]);
  });
  for (const cookie of response.headers.getSetCookie()) headers.push(["set-cookie", cookie]);
  res.writeHead(response.status, response.statusText, headers.flat());
  if (response.body === null) return void res.end();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
      if (res.destroyed) break;
    }
    res.end();
  } catch (error) {
    console.error("The response body failed:", error);
    res.destroy();
  }
}
