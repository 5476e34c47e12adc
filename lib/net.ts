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
  error(message: string): void;
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

/** Starts taking events (once per process). */
export function startNet(): void {
  if (started) return;
  started = true;
  native.netInit(takeEvents);
}

function takeEvents(): void {
  const events = native.netTakeEvents() as any[][];
  for (const e of events) {
    // One failing handler must not drop the events behind it.
    try {
      dispatch(e);
    } catch (error) {
      console.error("open-do: a network event failed:", error);
    }
  }
}

function dispatch(e: any[]): void {
  {
    switch (e[0]) {
      case 0:
        servers.get(e[1])?.request(e[2], e[3], e[4], e[5], e[6], e[7]);
        break;
      case 1:
        bodies.get(e[1])?.chunk(e[2]);
        break;
      case 2: {
        const sink = bodies.get(e[1]);
        bodies.delete(e[1]);
        sink?.end();
        break;
      }
      case 3: {
        const sink = bodies.get(e[1]);
        bodies.delete(e[1]);
        sink?.error(e[2]);
        break;
      }
      case 4:
        responses.get(e[1])?.drained();
        break;
      case 5: {
        const source = responses.get(e[1]);
        responses.delete(e[1]);
        source?.aborted();
        break;
      }
      case 6:
        socketMessage(e[1], e[2], e[3]);
        break;
      case 7:
        socketClosed(e[1], e[2], e[3], e[4], e[5]);
        break;
      case 8:
        socketError(e[1], e[2], e[3]);
        break;
      case 9: {
        const server = servers.get(e[1]);
        servers.delete(e[1]);
        server?.closed();
        break;
      }
    }
  }
}
