// `ctx`: the DurableObjectState handed to an object's constructor.
import type { DurableObjectId } from "./namespace.js";
import type { ObjectSockets } from "./object-sockets.js";
import type { DurableObjectStorage } from "./storage.js";
import type { WebSocket, WebSocketRequestResponsePair } from "./websocket.js";

/** What the runtime behind a state provides (see object-runtime.ts). */
export interface StateHost {
  readonly storage: DurableObjectStorage;
  readonly sockets: ObjectSockets;
  /** ctx.exports: loopback bindings to the Worker's own exports (undefined when not enabled). */
  readonly exports: Record<string, unknown> | undefined;
  waitUntil(promise: Promise<unknown>): void;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  abort(reason?: unknown, options?: { retryAlarm?: boolean }): never;
}

const EMPTY_PROPS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

export class DurableObjectState {
  readonly #host: StateHost;
  readonly id: DurableObjectId;

  /** @internal */
  constructor(id: DurableObjectId, host: StateHost) {
    this.id = id;
    this.#host = host;
  }

  get storage(): DurableObjectStorage {
    return this.#host.storage;
  }

  /**
   * The Worker's own exports as bindings (compat flag enable_ctx_exports, 2025-11-17):
   * a DurableObjectNamespace per Durable Object class with storage, and the default
   * export as a Fetcher. Filled by `open-do serve`, or the Registry's `exports` option.
   */
  get exports(): Record<string, unknown> | undefined {
    return this.#host.exports;
  }

  /** Cloudflare's `ctx.props`: none are passed to Durable Objects here. */
  get props(): Record<string, unknown> {
    return EMPTY_PROPS;
  }

  /** Keeps the object alive until `promise` settles; does not delay the response. */
  waitUntil(promise: Promise<unknown>): void {
    this.#host.waitUntil(promise);
  }

  /**
   * Runs `callback` while no other event is delivered to the object. If it throws, the
   * object is reset.
   */
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T> {
    return this.#host.blockConcurrencyWhile(callback);
  }

  /**
   * Resets the object at once: uncommitted writes are dropped, calls in flight fail with
   * `reason` (default "Application called abort() to reset Durable Object."), and this
   * call throws so that the code after it does not run. The next event constructs anew.
   */
  abort(reason?: string, options?: { retryAlarm?: boolean }): never {
    return this.#host.abort(reason, options);
  }

  /**
   * Makes `ws` (the server end of a WebSocketPair) hibernatable: its events go to the
   * object's webSocketMessage/webSocketClose/webSocketError handlers, and the object may
   * leave memory while the connection stays open. At most 10 tags of 256 characters.
   */
  acceptWebSocket(ws: WebSocket, tags?: string[]): void {
    this.#host.sockets.accept(ws, tags);
  }

  /** The open hibernatable sockets, or those tagged `tag`. */
  getWebSockets(tag?: string): WebSocket[] {
    return this.#host.sockets.getWebSockets(tag);
  }

  getTags(ws: WebSocket): string[] {
    return this.#host.sockets.getTags(ws);
  }

  /** A text message equal to `pair.request` is answered with `pair.response` without waking the object. No argument clears it. */
  setWebSocketAutoResponse(pair?: WebSocketRequestResponsePair): void {
    this.#host.sockets.setAutoResponse(pair);
  }

  getWebSocketAutoResponse(): WebSocketRequestResponsePair | null {
    return this.#host.sockets.getAutoResponse();
  }

  getWebSocketAutoResponseTimestamp(ws: WebSocket): Date | null {
    return this.#host.sockets.getAutoResponseTimestamp(ws);
  }

  /** The longest a hibernatable WebSocket handler may run (0 or nothing clears it). */
  setHibernatableWebSocketEventTimeout(timeoutMs?: number): void {
    this.#host.sockets.setEventTimeout(timeoutMs);
  }

  getHibernatableWebSocketEventTimeout(): number | null {
    return this.#host.sockets.getEventTimeout();
  }
}
