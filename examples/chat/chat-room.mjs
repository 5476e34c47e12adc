// A chat room, written as for Cloudflare: hibernatable WebSockets with tags and
// attachments, history in SQLite, and an auto-response so that keep-alive pings never
// wake the room.
import { DurableObject } from "../../index.js";

const HISTORY = 50;

export class ChatRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Runs again after every hibernation: rebuild what lived in memory from the sockets.
    this.sessions = new Map(ctx.getWebSockets().map((ws) => [ws, ws.deserializeAttachment()]));
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS messages (
      id INTEGER PRIMARY KEY, name TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)`);
  }

  async fetch(request) {
    if (request.headers.get("upgrade") !== "websocket") {
      return new Response("Expected a WebSocket upgrade.", { status: 426 });
    }
    const name = (new URL(request.url).searchParams.get("name") ?? "").trim().slice(0, 32);
    if (!name) return new Response("A name is required.", { status: 400 });

    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [`user:${name}`]);
    const session = { name, joinedAt: Date.now() };
    server.serializeAttachment(session);
    this.sessions.set(server, session);

    const history = this.ctx.storage.sql
      .exec("SELECT name, text, at FROM messages ORDER BY id DESC LIMIT ?", HISTORY)
      .toArray()
      .reverse();
    server.send(JSON.stringify({ type: "welcome", history, who: this.#names() }));
    this.#broadcast({ type: "joined", name, who: this.#names() }, server);
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, raw) {
    const session = this.sessions.get(ws) ?? ws.deserializeAttachment();
    let message;
    try {
      message = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
    } catch {
      return ws.send(JSON.stringify({ type: "error", error: "Messages are JSON." }));
    }
    if (message.type === "message" && typeof message.text === "string" && message.text.trim()) {
      const text = message.text.slice(0, 1000);
      const at = Date.now();
      this.ctx.storage.sql.exec("INSERT INTO messages (name, text, at) VALUES (?, ?, ?)", session.name, text, at);
      this.#broadcast({ type: "message", name: session.name, text, at });
    } else if (message.type === "whisper") {
      // Tags find one user's sockets without a lookup table of our own.
      for (const peer of this.ctx.getWebSockets(`user:${message.to}`)) {
        peer.send(JSON.stringify({ type: "whisper", from: session.name, text: String(message.text) }));
      }
    }
  }

  async webSocketClose(ws) {
    const session = this.sessions.get(ws) ?? ws.deserializeAttachment();
    this.sessions.delete(ws);
    this.#broadcast({ type: "left", name: session?.name, who: this.#names() });
  }

  async webSocketError(ws) {
    this.sessions.delete(ws);
  }

  #names() {
    return [...new Set(this.ctx.getWebSockets().map((ws) => ws.deserializeAttachment()?.name))].filter(Boolean).sort();
  }

  #broadcast(message, except) {
    const text = JSON.stringify(message);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws !== except) ws.send(text);
    }
  }
}
