import { DurableObject } from "cloudflare:workers";

/** One room per name. Sockets are hibernatable: an idle room costs nothing. */
export class ChatRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Keep-alive pings are answered by the runtime, without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch(request) {
    const name = new URL(request.url).searchParams.get("name") ?? "anonymous";
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [name]);
    server.serializeAttachment({ name });
    this.broadcast(`${name} joined`);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    const { name } = ws.deserializeAttachment();
    if (typeof message === "string" && message.startsWith("/whisper ")) {
      const [, to, ...words] = message.split(" ");
      for (const peer of this.ctx.getWebSockets(to)) peer.send(`${name} (whisper): ${words.join(" ")}`);
      return;
    }
    this.broadcast(`${name}: ${message}`);
  }

  webSocketClose(ws, code, reason) {
    // Answer the peer's Close (needed before compat date 2026-04-07; harmless after).
    // 1005 means the peer sent no code; it cannot be sent back, so answer with 1000.
    ws.close(code === 1005 ? 1000 : code, reason);
    const { name } = ws.deserializeAttachment();
    this.broadcast(`${name} left`, ws);
  }

  broadcast(text, except) {
    for (const ws of this.ctx.getWebSockets()) if (ws !== except) ws.send(text);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const room = /^\/rooms\/([\w-]+)$/.exec(url.pathname)?.[1];
    if (!room) return new Response("Connect a WebSocket to /rooms/<name>?name=<you>", { status: 404 });
    if (request.headers.get("Upgrade") !== "websocket") return new Response("Expected Upgrade: websocket", { status: 426 });
    return env.ROOMS.getByName(room).fetch(request);
  },
};
