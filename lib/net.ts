// The network's events, taken from Rust in batches (src/binding/net.rs) and handed to
// whoever waits for them: servers (requests), request bodies, response writers, sockets.
import { native } from "./native.js";
import { socketClosed, socketError, socketMessage } from "./websocket.js";

/** What lib/server.ts registers to hear about its requests. */
export interface NetListener {
  request(request: number, method: string, target: string, headers: string[], body: Uint8Array | true | null, websocket: boolean): void;
  closed(): void;
}

/** A streamed request body's consumer. */
export interface BodySink {
  chunk(data: Uint8Array): void;
  end(): void;
  /** `late`: the body did not arrive within the server's request timeout. */
  error(message: string, late: boolean): void;
}

/** A streamed response's producer (or a request still waiting for its response). */
export interface ResponseSource {
  drained(): void;
  aborted(): void;
}

export const servers = new Map<number, NetListener>();
export const bodies = new Map<number, BodySink>();
export const responses = new Map<number, ResponseSource>();

let started = false;

/**
 * Starts taking events (once per process). On Node, the event loop polls WebSocket
 * connections itself and hands their events over straight from there
 * (src/binding/host_loop.rs); Bun's libuv is only stubs, so its connections stay on the
 * network runtime and their events come through takeEvents like all others.
 */
export function startNet(): void {
  if (started) return;
  started = true;
  const hostLoop = !(process.versions as Record<string, string | undefined>).bun;
  native.netInit(takeEvents, hostLoop ? deliverMessage : null, hostLoop ? deliver : null);
}

function takeEvents(): void {
  const events = native.netTakeEvents() as any[][];
  for (const e of events) deliver(e);
}

// One failing handler must not drop the events behind it, nor take the process down.
function deliver(e: any[]): void {
  try {
    dispatch(e);
  } catch (error) {
    console.error("open-do: a network event failed:", error);
  }
}

function deliverMessage(socket: number, group: number, data: string | ArrayBuffer, size: number): void {
  try {
    socketMessage(socket, group, data, size);
  } catch (error) {
    console.error("open-do: a network event failed:", error);
  }
}

/** The entry for `id`, removed: its last event. */
function take<T>(map: Map<number, T>, id: number): T | undefined {
  const value = map.get(id);
  map.delete(id);
  return value;
}

/** One event (shapes in src/binding/net.rs, netTakeEvents). */
function dispatch(e: any[]): void {
  switch (e[0]) {
    case 0:
      return servers.get(e[1])?.request(e[2], e[3], e[4], e[5], e[6], e[7]);
    case 1:
      return bodies.get(e[1])?.chunk(e[2]);
    case 2:
      return take(bodies, e[1])?.end();
    case 3:
      return take(bodies, e[1])?.error(e[2], e[3]);
    case 4:
      return responses.get(e[1])?.drained();
    case 5:
      return take(responses, e[1])?.aborted();
    case 6:
      return socketMessage(e[1], e[2], e[3], e[4]);
    case 7:
      return socketClosed(e[1], e[2], e[3], e[4], e[5]);
    case 8:
      return socketError(e[1], e[2], e[3]);
    case 9:
      return take(servers, e[1])?.closed();
    case 10:
      // Already limited in Rust (EventQueue::log): written as is.
      return console.error(e[1]);
  }
}
