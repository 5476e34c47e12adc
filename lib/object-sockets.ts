// The hibernatable WebSockets of one object: ctx.acceptWebSocket() and its companions.
//
// The sockets' state lives in Rust, in the object's hibernation group (tags, attachments,
// the auto-response and its timestamps), so it outlives the object's instance. Here we
// keep only the JS objects of the server ends the current instance has seen, so that
// `ws === this.someSocket` holds within an instance; after hibernation the next event gets
// new ones, as on Cloudflare.
import { native } from "./native.js";
import { connectionOf, forgetConnection, setHibernationRouter, WebSocket, WebSocketRequestResponsePair, type SocketOwner } from "./websocket.js";

/** Cloudflare's limits and messages (workerd actor-state.c++). */
const MAX_TAGS = 10;
const MAX_TAG_LENGTH = 256;
const MAX_AUTO_RESPONSE_BYTES = 2048;
const MAX_EVENT_TIMEOUT_MS = 604_800_000;

/** What survives hibernation, kept by the registry per object. */
export class HibernationRecord {
  /** The Rust group (0 until the object first needs one). */
  group = 0;
  eventTimeout: number | null = null;
}

const encoder = new TextEncoder();
const utf8Length = (text: string): number => encoder.encode(text).length;

/** A message's handler started, or the message was dropped: its peer may be read on. */
export function delivered(socket: number, size: number): void {
  if (size > 0) native.netDelivered(socket, size);
}

/** Which object a group belongs to: how a message wakes a hibernated object. */
const owners = new Map<number, HibernationHost>();

/** What the object runtime does with a hibernatable event. */
export interface HibernationHost {
  /** `size`: see HibernationRouter.message (websocket.ts). */
  webSocketMessage(socket: number, data: string | ArrayBuffer, size: number): void;
  webSocketClose(socket: number, code: number, reason: string, clean: boolean): void;
  webSocketError(socket: number, message: string): void;
}

setHibernationRouter({
  message: (socket, group, data, size) => {
    const host = owners.get(group);
    if (host === undefined) delivered(socket, size);
    else host.webSocketMessage(socket, data, size);
  },
  closed: (socket, group, code, reason, clean) => {
    const host = owners.get(group);
    if (host === undefined) native.netReleaseSocket(socket);
    else host.webSocketClose(socket, code, reason, clean);
  },
  error: (socket, group, message) => {
    const host = owners.get(group);
    if (host === undefined) native.netReleaseSocket(socket);
    else host.webSocketError(socket, message);
  },
});

/**
 * Creates the record's group; its events go to `host()` (the object's runtime, looked up
 * anew each time: the registry may have released and recreated it). `host()` returns
 * undefined once the registry is closed: late events then only free the socket.
 */
export function ownGroup(record: HibernationRecord, host: () => HibernationHost | undefined): void {
  if (record.group === 0) record.group = native.netCreateGroup();
  owners.set(record.group, {
    webSocketMessage: (socket, data, size) => {
      const h = host();
      if (h === undefined) delivered(socket, size);
      else h.webSocketMessage(socket, data, size);
    },
    webSocketClose: (socket, code, reason, clean) => {
      const h = host();
      if (h === undefined) native.netReleaseSocket(socket);
      else h.webSocketClose(socket, code, reason, clean);
    },
    webSocketError: (socket, message) => {
      const h = host();
      if (h === undefined) native.netReleaseSocket(socket);
      else h.webSocketError(socket, message);
    },
  });
}

/** Forgets a group (registry closed). */
export function disownGroup(record: HibernationRecord): void {
  if (record.group !== 0) owners.delete(record.group);
}

export class ObjectSockets {
  /** Created on first need (see #ensure): objects that never use sockets keep none. */
  #record: HibernationRecord | undefined;
  readonly #owner: SocketOwner;
  /** Server ends the current instance has seen, by socket id. */
  readonly #wrappers = new Map<number, WebSocket>();

  readonly #register: () => HibernationRecord;

  /**
   * `record` is what hibernation kept of the object, if anything; `register` creates its
   * record and group (see ownGroup) the first time one is needed.
   */
  constructor(record: HibernationRecord | undefined, owner: SocketOwner, register: () => HibernationRecord) {
    this.#record = record;
    this.#owner = owner;
    this.#register = register;
  }

  /** The record, with its group, created on first need. */
  #ensure(): HibernationRecord {
    if (this.#record === undefined || this.#record.group === 0) this.#record = this.#register();
    return this.#record;
  }

  /** The group, created on first need: objects that never accept a socket cost nothing. */
  get #group(): number {
    return this.#ensure().group;
  }

  /** The group if there is one yet (0: none). */
  get #existingGroup(): number {
    return this.#record?.group ?? 0;
  }

  accept(ws: WebSocket, tags: string[] = []): void {
    if (!(ws instanceof WebSocket)) throw new TypeError("acceptWebSocket() expects a WebSocket.");
    if (!Array.isArray(tags)) throw new TypeError("acceptWebSocket() expects its tags as an array of strings.");
    // workerd's check, tag by tag: the count of distinct tags so far, then the length.
    const unique = new Set<string>();
    for (const tag of tags.map(String)) {
      if (unique.size >= MAX_TAGS) throw new Error(`a Hibernatable WebSocket cannot have more than ${MAX_TAGS} tags`);
      if (tag.length > MAX_TAG_LENGTH) throw new Error(`"${tag}" is longer than the max tag length (${MAX_TAG_LENGTH} characters).`);
      unique.add(tag);
    }
    ws._acceptHibernatable(this.#group, [...unique], this.#owner);
    this.#wrappers.set(ws._connection.socket, ws);
  }

  getWebSockets(tag?: string): WebSocket[] {
    if (this.#existingGroup === 0) return [];
    const ids = native.netGroupSockets(this.#group, tag === undefined ? undefined : String(tag));
    return ids.map((id) => this.wrapper(id));
  }

  getTags(ws: WebSocket): string[] {
    const tags = ws instanceof WebSocket && ws._hibernatable ? native.netTags(ws._connection.socket) : null;
    if (tags === null) throw new TypeError("getTags() only works on WebSockets accepted with acceptWebSocket().");
    return tags;
  }

  setAutoResponse(pair?: WebSocketRequestResponsePair): void {
    if (pair === undefined || pair === null) {
      if (this.#existingGroup !== 0) native.netSetAutoResponse(this.#existingGroup, null, null);
      return;
    }
    if (!(pair instanceof WebSocketRequestResponsePair)) throw new TypeError("setWebSocketAutoResponse() expects a WebSocketRequestResponsePair.");
    const request = utf8Length(pair.request);
    const response = utf8Length(pair.response);
    if (request > MAX_AUTO_RESPONSE_BYTES) {
      throw new RangeError(`Request cannot be larger than ${MAX_AUTO_RESPONSE_BYTES} bytes. A request of size ${request} was provided.`);
    }
    if (response > MAX_AUTO_RESPONSE_BYTES) {
      throw new RangeError(`Response cannot be larger than ${MAX_AUTO_RESPONSE_BYTES} bytes. A response of size ${response} was provided.`);
    }
    native.netSetAutoResponse(this.#group, pair.request, pair.response);
  }

  getAutoResponse(): WebSocketRequestResponsePair | null {
    if (this.#existingGroup === 0) return null;
    const pair = native.netAutoResponse(this.#group);
    return pair === null ? null : new WebSocketRequestResponsePair(pair[0]!, pair[1]!);
  }

  getAutoResponseTimestamp(ws: WebSocket): Date | null {
    if (!(ws instanceof WebSocket) || ws._connection.socket === 0) return null;
    const at = native.netAutoRespondedAt(ws._connection.socket);
    return at === null ? null : new Date(at);
  }

  setEventTimeout(ms?: number): void {
    if (ms === undefined || ms === 0) {
      if (this.#record !== undefined) this.#record.eventTimeout = null;
      return;
    }
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) throw new TypeError("The hibernatable WebSocket event timeout must be a number of milliseconds.");
    if (ms > MAX_EVENT_TIMEOUT_MS) throw new Error(`Event timeout should not exceed ${MAX_EVENT_TIMEOUT_MS} ms.`);
    this.#ensure().eventTimeout = ms;
  }

  getEventTimeout(): number | null {
    return this.#record?.eventTimeout ?? null;
  }

  /** Hibernatable sockets are open: the object may hibernate rather than be evicted. */
  get any(): boolean {
    return this.#existingGroup !== 0 && native.netGroupSize(this.#existingGroup) > 0;
  }

  /** The server end's JS object for socket `id` (a new one after hibernation). */
  wrapper(id: number): WebSocket {
    let ws = this.#wrappers.get(id);
    if (ws === undefined) {
      ws = WebSocket._woken(connectionOf(id), this.#owner);
      this.#wrappers.set(id, ws);
    }
    return ws;
  }

  /** The socket's last event was delivered: Rust may forget it. */
  release(id: number): void {
    this.#wrappers.delete(id);
    forgetConnection(id);
    native.netReleaseSocket(id);
  }

  /** The instance is gone (hibernation, eviction, reset): its JS objects go with it. */
  dropInstance(): void {
    this.#wrappers.clear();
  }
}
