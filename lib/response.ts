// A Response that can carry a WebSocket: Cloudflare's `new Response(null, { status: 101,
// webSocket })`. Node's and Bun's Response refuse status 101, so ours is a subclass that
// keeps the upgrade to itself and otherwise behaves exactly like the runtime's own.
import { WebSocket } from "./websocket.js";

const NativeResponse: typeof globalThis.Response = globalThis.Response;

export interface ResponseInit extends globalThis.ResponseInit {
  webSocket?: WebSocket | null;
}

/**
 * The WebSocket of each upgrade response. Not a private field: the runtime's constructor
 * reads `status` (our getter) before a subclass's fields exist.
 */
const upgrades = new WeakMap<object, WebSocket>();

export class Response extends NativeResponse {
  /** Responses the runtime makes itself (Response.json(), fetch()) are Responses too. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  }

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const webSocket = init?.webSocket ?? null;
    if (webSocket !== null) {
      if (!(webSocket instanceof WebSocket)) throw new TypeError("webSocket must be a WebSocket (the client end of a WebSocketPair).");
      if (init?.status !== 101) throw new RangeError("Responses with a WebSocket must have status code 101.");
      // The runtime's Response cannot say 101; the status getter below does.
      super(body, { ...init, status: 200 });
    } else {
      // workerd (and Node) allow 200–599 only; Bun would take 101 without a WebSocket.
      const status = init?.status;
      if (status !== undefined && !(Number(status) >= 200 && Number(status) <= 599)) {
        throw new RangeError('init["status"] must be in the range of 200 to 599, inclusive.');
      }
      super(body, init);
    }
    if (webSocket !== null) upgrades.set(this, webSocket);
  }

  override get status(): number {
    return upgrades.has(this) ? 101 : super.status;
  }

  override get ok(): boolean {
    return !upgrades.has(this) && super.ok;
  }

  override get statusText(): string {
    return upgrades.has(this) ? "Switching Protocols" : super.statusText;
  }

  /** The client end of the WebSocketPair this response upgrades to, or null. */
  get webSocket(): WebSocket | null {
    return upgrades.get(this) ?? null;
  }
}

/**
 * Cloudflare's globals that Node and Bun lack: WebSocketPair, WebSocketRequestResponsePair,
 * and a Response that takes `webSocket`. Installed when the package loads, so Durable
 * Object code written for Cloudflare runs unchanged. Our Response extends the runtime's,
 * so `instanceof Response` keeps working for responses made before or by other code.
 */
export function installGlobals(globals: Record<string, unknown>): void {
  const g = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals)) {
    if (g[name] === undefined || (name === "Response" && g[name] === NativeResponse)) {
      Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
    }
  }
}
