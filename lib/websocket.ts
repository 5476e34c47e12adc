// WebSocketPair and Cloudflare's WebSocket: both ends of a connection as JS objects.
//
// A pair is one Connection with two ends. The server end stays in the object; the
// client end is returned in a 101 Response. What carries messages between them depends on
// where the client end went:
// - our server (lib/server.ts) puts it on a real connection: the server end then talks to
//   the Rust socket (src/engine/net/websocket.rs) by id;
// - code in this process that accept()s the client end talks to the server end directly.
//
// Hibernatable sockets (ctx.acceptWebSocket) keep their state in Rust (tags, attachment,
// auto-response); their events reach the object through its mailbox (object-sockets.ts),
// so the JS object of the server end may come and go with the object's instance.
import { native } from "./native.js";
import { deserialize, serialize } from "./structured-clone.js";

/** Cloudflare's attachment limit (workerd MAX_ATTACHMENT_SIZE). */
export const MAX_ATTACHMENT_SIZE = 16 * 1024;
/** What a peer that vanishes is reported with. */
export const DISCONNECTED = "WebSocket disconnected without sending Close frame.";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

type Message = string | ArrayBuffer;

/** Compatibility-dependent behaviour (reference §2.17), set by the Registry. */
const settings = { closeReasonByteLimit: true, standardBinaryType: "arraybuffer" as "arraybuffer" | "blob", closeAutoReply: true };

/** @internal */
export function configureWebSockets(options: Partial<typeof settings>): void {
  Object.assign(settings, options);
  if (options.closeAutoReply !== undefined) native.netSetCloseAutoReply(options.closeAutoReply);
}

/** Where hibernatable events go: set by object-sockets.ts. */
export interface HibernationRouter {
  /**
   * `size`: the message's bytes as our server counted them (0 for other transports), to
   * hand back through native.netDelivered once its handler starts, so that the peer is
   * read again (see PAUSE_RECEIVING_ABOVE in src/engine/net/sockets.rs).
   */
  message(socket: number, group: number, data: Message, size: number): void;
  closed(socket: number, group: number, code: number, reason: string, clean: boolean): void;
  error(socket: number, group: number, message: string): void;
}
let router: HibernationRouter | undefined;
/** @internal */
export function setHibernationRouter(r: HibernationRouter): void {
  router = r;
}

/** Sockets of our server whose server end uses the standard API (events go to the JS object). */
const liveConnections = new Map<number, Connection>();

/**
 * What both ends share. `socket` is the Rust socket id: allocated when the connection
 * goes onto a real connection or becomes hibernatable, 0 before.
 */
export class Connection {
  socket = 0;
  /** The client end is on a connection of our server. */
  network = false;
  /** The hibernation group of the server end (0: not hibernatable). */
  group = 0;
  client: WebSocket;
  /** The server end's current JS object (a new one after hibernation). */
  server: WebSocket;
  /** Messages the server end sent before the client end went anywhere. */
  pending: (Message | { close: [number | undefined, string] })[] = [];
  /** The client end's transport when another server runs it (see adapters/). */
  external: ExternalSocket | undefined;

  constructor(client: WebSocket, server: WebSocket) {
    this.client = client;
    this.server = server;
  }

  /** The Rust socket id, created on first need. */
  id(): number {
    if (this.socket === 0) this.socket = native.netCreateSocket();
    return this.socket;
  }

  /**
   * The client end went to a server this runtime does not own (Node's http with `ws`,
   * Bun.serve): the server end's sends go through `transport`, and the adapter reports
   * what the peer does through fromClient() and clientClosed().
   */
  attach(transport: ExternalSocket): void {
    this.external = transport;
    if (this.group !== 0) hosted.set(this.socket, this);
    const pending = this.pending;
    this.pending = [];
    for (const item of pending) {
      if (typeof item === "object" && "close" in item) transport.close(item.close[0], item.close[1]);
      else transport.send(item);
    }
  }

  /** The client end sent `data`; `reply` answers it directly (an auto-response). */
  fromClient(data: Message, reply: (text: string) => void): void {
    if (this.group !== 0) {
      if (typeof data === "string") {
        const answer = native.netAutoReply(this.socket, data);
        if (answer !== null) return reply(answer);
      }
      return router?.message(this.socket, this.group, data, 0);
    }
    this.server._receive(data);
  }

  /** The client end closed (or its connection ended: 1006, not clean). */
  clientClosed(code: number, reason: string, clean: boolean): void {
    if (this.group !== 0) {
      hosted.delete(this.socket);
      native.netSocketEnded(this.socket);
      router?.closed(this.socket, this.group, code, reason, clean);
    } else {
      this.server._closed(code, reason, clean);
    }
  }

  /** lib/server.ts put the client end on a real connection with socket id `socket`. */
  onNetwork(socket: number): void {
    this.socket = socket;
    this.network = true;
    if (this.group === 0) liveConnections.set(socket, this);
    const pending = this.pending;
    this.pending = [];
    for (const item of pending) {
      if (typeof item === "object" && "close" in item) native.netCloseSocket(socket, item.close[0], item.close[1]);
      else sendNative(socket, item);
    }
  }
}

function sendNative(socket: number, data: Message | ArrayBufferView): void {
  if (typeof data === "string") native.netSendText(socket, data);
  else native.netSendBinary(socket, data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** A connection some other server runs (see Connection.attach). */
export interface ExternalSocket {
  send(data: Message): void;
  close(code?: number, reason?: string): void;
}

/**
 * Events of our server's sockets (from lib/net.ts). `size` goes back to Rust once the
 * message's handler ran (see HibernationRouter.message).
 */
export function socketMessage(socket: number, group: number, data: Message, size: number): void {
  if (group !== 0) return router?.message(socket, group, data, size);
  const server = liveConnections.get(socket)?.server;
  if (server === undefined) native.netDelivered(socket, size);
  else server._receive(data, size);
}

export function socketClosed(socket: number, group: number, code: number, reason: string, clean: boolean): void {
  if (group !== 0) return router?.closed(socket, group, code, reason, clean);
  const connection = liveConnections.get(socket);
  liveConnections.delete(socket);
  native.netReleaseSocket(socket);
  connection?.server._closed(code, reason, clean);
}

export function socketError(socket: number, group: number, message: string): void {
  if (group !== 0) return router?.error(socket, group, message);
  const connection = liveConnections.get(socket);
  liveConnections.delete(socket);
  native.netReleaseSocket(socket);
  connection?.server._error(message);
}

/** The output gate of the object a server end belongs to: sends wait for its writes. */
export interface SocketOwner {
  whenDurable(): Promise<void> | undefined;
}

type EventClass = new (type: string, init: Record<string, unknown>) => Event;
const globals = globalThis as unknown as Record<string, EventClass | undefined>;

const ErrorEventClass: EventClass =
  globals.ErrorEvent ??
  class ErrorEvent extends Event {
    readonly error: unknown;
    readonly message: string;
    constructor(type: string, init: { error?: unknown; message?: string } = {}) {
      super(type);
      this.error = init.error;
      this.message = init.message ?? "";
    }
  };

class CloseEventPolyfill extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
}
const CloseEventClass: EventClass = globals.CloseEvent ?? CloseEventPolyfill;

/**
 * The `message` event. Our own class rather than the runtime's: Node's (undici's) checks
 * its init dictionary at a cost of microseconds per message, on the hot path.
 */
export class MessageEvent extends Event {
  readonly data: unknown;
  constructor(type: string, init: { data?: unknown } = {}) {
    super(type);
    this.data = init.data;
  }
}

export class WebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  readonly url: string | null = null;
  readonly protocol: string | null = null;
  readonly extensions: string | null = null;
  /** "blob" by default from compat date 2026-03-17 (websocket_standard_binary_type); hibernation handlers always get ArrayBuffer. */
  binaryType: "arraybuffer" | "blob" = settings.standardBinaryType;
  #readyState = OPEN;

  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onopen: ((event: Event) => void) | null = null;

  /** @internal */
  _connection!: Connection;
  /**
   * @internal This end stays in this process ([1] of a pair, until the other end turns
   * out to be the one that stays: Cloudflare lets code return either end).
   */
  _isServer: boolean;
  #accepted = false;
  /** @internal accepted through ctx.acceptWebSocket() */
  _hibernatable = false;
  /** The client end was returned in a Response (or otherwise handed on). */
  #used = false;
  #closeSent = false;
  /** Messages received before accept(), with their sizes (see _receive). */
  #inbox: [Message, number][] = [];
  #owner: SocketOwner | undefined;
  /** Sends waiting for the output gate, in order. */
  #gated: Promise<void> | undefined;

  /** @internal Use `new WebSocketPair()`. */
  constructor(isServer: boolean, connection?: Connection) {
    super();
    this._isServer = isServer;
    if (connection !== undefined) this._connection = connection;
  }

  get readyState(): number {
    return this.#readyState;
  }

  /** @internal The server end as woken from hibernation: accepted, state in Rust. */
  static _woken(connection: Connection, owner: SocketOwner | undefined): WebSocket {
    const ws = new WebSocket(true, connection);
    ws.#accepted = true;
    ws._hibernatable = true;
    ws.#owner = owner;
    connection.server = ws;
    return ws;
  }

  /** Standard (non-hibernatable) accept: events arrive through addEventListener. */
  accept(_options?: { allowHalfOpen?: boolean }): void {
    if (this._hibernatable) throw new TypeError("Can't accept() a WebSocket that was already accepted with acceptWebSocket().");
    if (this.#accepted) return;
    if (!this._isServer) this.#claim();
    this.#accepted = true;
    const inbox = this.#inbox;
    this.#inbox = [];
    for (const [data, size] of inbox) this._receive(data, size);
    if (!this._isServer) {
      // What the server end sent before this end was accepted here.
      const connection = this._connection;
      const pending = connection.pending;
      connection.pending = [];
      for (const item of pending) {
        if (typeof item === "object" && "close" in item) {
          const [code, reason] = item.close;
          queueMicrotask(() => {
            this._closed(code ?? 1005, reason, true);
            connection.server._closed(code ?? 1005, reason, true);
          });
        } else this._receive(item);
      }
    }
  }

  /** @internal acceptWebSocket(): the object's mailbox gets the events. */
  _acceptHibernatable(group: number, tags: string[], owner: SocketOwner): void {
    if (!this._isServer) {
      // Code may keep either end of a pair: this one stays, the other is the client end.
      if (this.#used || this._connection.server.#accepted || this._connection.network || this._connection.external !== undefined) {
        throw new Error("Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted or used in a Response.");
      }
      const connection = this._connection;
      const peer = connection.server;
      connection.server = this;
      connection.client = peer;
      this._isServer = true;
      peer._isServer = false;
    }
    if (this.#accepted) throw new Error("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`");
    const connection = this._connection;
    if (connection.client.#accepted || connection.network || connection.external !== undefined) {
      throw new Error("Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted or used in a Response.");
    }
    native.netHibernate(connection.id(), group, tags);
    connection.group = group;
    liveConnections.delete(connection.socket);
    this.#accepted = true;
    this._hibernatable = true;
    this.#owner = owner;
    if (!connection.network) hosted.set(connection.socket, connection);
  }

  /** @internal Standard accept inside an object: sends wait for its writes. */
  _setOwner(owner: SocketOwner): void {
    this.#owner ??= owner;
  }

  #claim(): void {
    if (this.#used) throw new TypeError("This WebSocket was already used (returned in a Response or accepted).");
    this.#used = true;
  }

  /**
   * @internal This end is being returned in a Response: it becomes the client end, and
   * its peer the end that stays (for code that keeps [0] and returns [1]).
   */
  /**
   * The response carrying this end never reached a client (the request was no upgrade,
   * or the client left first): the end the object kept hears a disconnect, as on workerd.
   * Without it a hibernatable one stayed registered for good, and any client could fill
   * an object's 32,768 sockets with plain GETs.
   */
  _neverConnected(): void {
    let connection: Connection;
    try {
      connection = this._handOff();
    } catch {
      return; // not a pair end that could be handed to a client
    }
    connection.clientClosed(1006, DISCONNECTED, false);
  }

  _handOff(): Connection {
    const connection = this._connection;
    if (connection.server === this) {
      if (this.#accepted) throw new TypeError("This WebSocket was accepted in this process; return the other end of the pair in the Response.");
      const peer = connection.client;
      connection.client = this;
      connection.server = peer;
      this._isServer = false;
      peer._isServer = true;
      // What the peer did so far, it did as the end that stays.
      peer.#used = false;
    }
    this.#claim();
    return connection;
  }

  send(message: string | ArrayBuffer | ArrayBufferView): void {
    if (!this.#accepted) {
      throw new TypeError("You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.");
    }
    if (this.#closeSent || this.#readyState === CLOSED) throw new TypeError("Can't call WebSocket send() after close().");
    const data: Message =
      typeof message === "string"
        ? message
        : message instanceof ArrayBuffer
          ? message.slice(0)
          : (new Uint8Array(message.buffer, message.byteOffset, message.byteLength).slice().buffer as ArrayBuffer);
    this.#output(() => this.#transmit(data));
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && !(code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code)))) {
      throw new TypeError(`Invalid WebSocket close code: ${code}.`);
    }
    if (reason !== undefined && code === undefined) throw new TypeError("If you specify a WebSocket close reason, you must also specify a code.");
    if (settings.closeReasonByteLimit && reason !== undefined && new TextEncoder().encode(reason).length > 123) {
      throw new SyntaxError("The WebSocket close reason must be at most 123 bytes of UTF-8.");
    }
    if (this.#closeSent || this.#readyState === CLOSED) return;
    // The answer to a peer's Close that the runtime left to us: the socket is then closed.
    const answering = this.#readyState === CLOSING;
    this.#closeSent = true;
    if (this.#readyState === OPEN) this.#readyState = CLOSING;
    this.#output(() => this.#transmitClose(code, reason ?? ""));
    if (answering) this.#readyState = CLOSED;
  }

  /**
   * Sends wait for the owning object's writes (Cloudflare's output gate), in order: each
   * waits for the sends before it and then for the writes made before it. Waiting only for
   * the earlier send let a send leave before its own turn's writes were committed.
   */
  #output(action: () => void): void {
    const own = this.#owner?.whenDurable();
    const earlier = this.#gated;
    // `earlier` never rejects (see below), so the chain keeps every send behind the last.
    const gate = earlier === undefined ? own : own === undefined ? earlier : earlier.then(() => own);
    if (gate === undefined) return action();
    const next: Promise<void> = gate.then(
      () => {
        if (this.#gated === next) this.#gated = undefined;
        try {
          action();
        } catch (error) {
          console.error("A WebSocket send failed:", error);
        }
      },
      () => {
        // The writes failed: the object was reset and nothing it sent after them leaves.
        if (this.#gated === next) this.#gated = undefined;
      },
    );
    this.#gated = next;
  }

  #transmit(data: Message): void {
    const connection = this._connection;
    if (this._isServer) {
      if (connection.network) return sendNative(connection.socket, data);
      if (connection.external !== undefined) return connection.external.send(data);
      if (!connection.client.#used) return void connection.pending.push(data);
      return connection.client._receive(data);
    }
    // The client end, used in this process.
    connection.fromClient(data, (reply) => this._receive(reply));
  }

  #transmitClose(code: number | undefined, reason: string): void {
    const connection = this._connection;
    if (this._isServer) {
      if (connection.network) return void native.netCloseSocket(connection.socket, code, reason);
      if (connection.external !== undefined) return connection.external.close(code, reason);
      if (!connection.client.#used) return void connection.pending.push({ close: [code, reason] });
      // The in-process peer hears the close and, as the runtime does, answers it.
      return queueMicrotask(() => {
        connection.client._closed(code ?? 1005, reason, true);
        this._closed(code ?? 1005, reason, true);
      });
    }
    queueMicrotask(() => {
      connection.clientClosed(code ?? 1005, reason, true);
      this._closed(code ?? 1005, reason, true);
    });
  }

  /** @internal A message arrived for this end. */
  /**
   * `size` (messages from our server's connections): the bytes to hand back to Rust once
   * the listeners ran, so that the peer is read again (see HibernationRouter.message).
   */
  _receive(data: Message, size = 0): void {
    if (this.#readyState === CLOSED) return this.#delivered(size);
    if (!this.#accepted) return void this.#inbox.push([data, size]);
    queueMicrotask(() => {
      try {
        const event = new MessageEvent("message", { data: typeof data !== "string" && this.binaryType === "blob" ? new Blob([data]) : data });
        this.onmessage?.(event);
        this.dispatchEvent(event);
      } finally {
        this.#delivered(size);
      }
    });
  }

  #delivered(size: number): void {
    if (size > 0) native.netDelivered(this._connection.socket, size);
  }

  /** @internal The connection closed (a Close frame, or 1006 without one). */
  _closed(code: number, reason: string, clean: boolean): void {
    if (this.#readyState === CLOSED) return;
    // Without auto-reply (compat date before 2026-04-07) a peer's Close waits for ours:
    // the socket is CLOSING until close() answers it.
    const awaitingAnswer = clean && !settings.closeAutoReply && !this.#closeSent && this._connection?.network === true;
    this.#readyState = awaitingAnswer ? CLOSING : CLOSED;
    if (this._hibernatable) return; // the object's webSocketClose() hears it
    const event = new CloseEventClass("close", { code, reason, wasClean: clean });
    this.onclose?.(event);
    this.dispatchEvent(event);
  }

  /** @internal */
  _error(message: string): void {
    this.#readyState = CLOSED;
    if (this._hibernatable) return;
    const event = new ErrorEventClass("error", { message, error: new Error(message) });
    this.onerror?.(event);
    this.dispatchEvent(event);
  }

  /** Keeps a copy of `value` with the socket; it survives hibernation (16 KiB at most). */
  serializeAttachment(value: unknown): void {
    const bytes = value === undefined || value === null ? null : serialize(value);
    if (bytes !== null && bytes.length > MAX_ATTACHMENT_SIZE) {
      throw new Error(`A WebSocket 'attachment' cannot be larger than ${MAX_ATTACHMENT_SIZE} bytes. Serialized size was ${bytes.length} bytes.`);
    }
    native.netSetAttachment(this._connection.id(), bytes);
  }

  /** A fresh copy of what serializeAttachment() kept, or null. */
  deserializeAttachment(): unknown {
    if (this._connection.socket === 0) return null;
    const bytes = native.netAttachment(this._connection.socket);
    return bytes === null ? null : deserialize(bytes);
  }
}

/** Hibernatable connections whose transport is JS (in-process, or another server's). */
const hosted = new Map<number, Connection>();

/** @internal For waking: the connection behind a hibernatable socket id. */
export function connectionOf(socket: number): Connection {
  const existing = hosted.get(socket);
  if (existing !== undefined) return existing;
  const connection = new Connection(new WebSocket(false), new WebSocket(true));
  connection.socket = socket;
  connection.network = true;
  return connection;
}

/** @internal */
export function forgetConnection(socket: number): void {
  hosted.delete(socket);
}

/** `new WebSocketPair()`: `[0]` is the client end (return it in a Response), `[1]` the server end. */
export class WebSocketPair {
  0: WebSocket;
  1: WebSocket;
  constructor() {
    const client = new WebSocket(false);
    const server = new WebSocket(true);
    const connection = new Connection(client, server);
    client._connection = connection;
    server._connection = connection;
    this[0] = client;
    this[1] = server;
  }
  *[Symbol.iterator](): IterableIterator<WebSocket> {
    yield this[0];
    yield this[1];
  }
}

/** An auto-response: a text message equal to `request` is answered with `response` without waking the object. */
export class WebSocketRequestResponsePair {
  readonly #request: string;
  readonly #response: string;
  constructor(request: string, response: string) {
    if (arguments.length < 2) throw new TypeError("WebSocketRequestResponsePair takes a request and a response.");
    this.#request = String(request);
    this.#response = String(response);
  }
  get request(): string {
    return this.#request;
  }
  get response(): string {
    return this.#response;
  }
}
