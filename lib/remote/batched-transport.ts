// Cap'n Web over one WebSocket, with the messages of one turn sent as one frame.
//
// Cap'n Web sends every protocol message as its own frame: a call is a "push" and a "pull",
// and its result is followed by a "release" — three frames, three syscalls and three events
// on the other side for one remote call. On loopback that per-frame cost is most of a
// call's time. Both ends of our client and endpoint agree (the client asks with
// `?frames=batched`) to send the messages queued during one turn as one text frame, joined
// by newlines: JSON.stringify never emits a raw newline, so the split is exact. Plain Cap'n
// Web clients, which do not ask, get Cap'n Web's own transport.
//
// This file runs in browsers too: no Node imports.
import { WebSocketTransport, type RpcTransport } from "capnweb";

/** The query parameter by which a client asks for batched frames. */
export const BATCHED_FRAMES = "frames";
export const BATCHED_FRAMES_VALUE = "batched";

/** Runs `flush` once the current turn (its microtasks included) is over. */
const afterTurn: (flush: () => void) => void = (() => {
  if (typeof setImmediate === "function") return (flush) => void setImmediate(flush);
  // Browsers: a message to ourselves is a macrotask without setTimeout's clamping.
  const channel = new MessageChannel();
  const queue: (() => void)[] = [];
  channel.port1.onmessage = () => queue.shift()?.();
  return (flush) => {
    queue.push(flush);
    channel.port2.postMessage(null);
  };
})();

export class BatchedTransport implements RpcTransport {
  readonly #socket: WebSocketTransport;
  readonly #mapError: (cause: unknown) => unknown;
  #outgoing: string[] = [];
  #incoming: string[] = [];
  #next = 0;

  /** `mapError` turns the socket's end (receive() rejecting) into the error calls see (or its promise). */
  constructor(socket: WebSocket, mapError: (cause: unknown) => unknown = (cause) => cause) {
    this.#socket = new WebSocketTransport(socket);
    this.#mapError = mapError;
  }

  send(message: string): void {
    if (this.#outgoing.push(message) === 1) afterTurn(this.#flush);
  }

  readonly #flush = (): void => {
    if (this.#outgoing.length === 0) return;
    const frame = this.#outgoing.length === 1 ? this.#outgoing[0]! : this.#outgoing.join("\n");
    this.#outgoing = [];
    try {
      this.#socket.send(frame);
    } catch {
      // The socket is gone: receive() rejects with its end, and the session aborts on that.
    }
  };

  async receive(): Promise<string> {
    if (this.#next < this.#incoming.length) return this.#incoming[this.#next++]!;
    let frame: string;
    try {
      frame = await this.#socket.receive();
    } catch (cause) {
      throw await this.#mapError(cause);
    }
    if (!frame.includes("\n")) return frame;
    this.#incoming = frame.split("\n");
    this.#next = 1;
    return this.#incoming[0]!;
  }

  abort(reason: unknown): void {
    this.#flush(); // Cap'n Web's last "abort" message goes out before the close
    this.#socket.abort?.(reason);
  }
}
