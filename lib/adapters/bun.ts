// Serving objects from Bun.serve: `Bun.serve({ port, ...bunServe(fetch) })`. HTTP goes
// through as is; a 101 Response with a WebSocket becomes Bun's own upgrade, and Bun's
// socket carries the connection (hibernation state still lives in Rust).
import type { ExecutionContext, FetchHandler } from "../server.js";
import { WebSocket, type Connection } from "../websocket.js";

export interface BunServeOptions {
  /** The `env` the handler receives. */
  env?: unknown;
}

/** The part of Bun's ServerWebSocket we use. */
interface BunSocket {
  data: { connection: Connection };
  send(data: string | ArrayBuffer | Uint8Array): unknown;
  close(code?: number, reason?: string): void;
}

interface BunServer {
  upgrade(request: Request, options: { data: unknown; headers?: Record<string, string> }): boolean;
}

/** The `fetch` and `websocket` options of Bun.serve for a Worker-style fetch handler. */
export function bunServe(fetch: FetchHandler, options: BunServeOptions = {}) {
  if (typeof fetch !== "function") throw new TypeError("bunServe() needs a fetch(request, env, ctx) handler.");
  const env = options.env ?? {};
  const ctx: ExecutionContext = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} };
  return {
    async fetch(request: Request, server: BunServer): Promise<Response | undefined> {
      const response = await fetch(request, env, ctx);
      const ws = (response as { webSocket?: WebSocket | null }).webSocket;
      if (response.status !== 101 || !(ws instanceof WebSocket)) return response;
      const protocol = response.headers.get("sec-websocket-protocol");
      const connection = ws._handOff();
      const upgraded = server.upgrade(request, { data: { connection }, headers: protocol === null ? undefined : { "Sec-WebSocket-Protocol": protocol } });
      if (upgraded) return undefined;
      connection.clientClosed(1006, "WebSocket disconnected without sending Close frame.", false);
      return new Response("Expected a WebSocket upgrade request.", { status: 400 });
    },
    websocket: {
      maxPayloadLength: 32 << 20, // Cloudflare's received-message limit
      open(ws: BunSocket) {
        ws.data.connection.attach({ send: (data) => void ws.send(data), close: (code, reason) => ws.close(code, reason) });
      },
      message(ws: BunSocket, message: string | Uint8Array) {
        const data = typeof message === "string" ? message : (message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength) as ArrayBuffer);
        ws.data.connection.fromClient(data, (reply) => void ws.send(reply));
      },
      close(ws: BunSocket, code: number, reason: string) {
        const clean = code !== 1006;
        ws.data.connection.clientClosed(code, clean ? reason : "WebSocket disconnected without sending Close frame.", clean);
      },
    },
  };
}
