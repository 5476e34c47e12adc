// The anchor for WebSocket echo: a bare `ws` server (no objects, no storage) that sends
// every message back. Prints {"port":N}.
import { WebSocketServer } from "ws";

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })));
wss.on("listening", () => console.log(JSON.stringify({ port: wss.address().port })));
