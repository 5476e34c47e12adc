// Our side of the network benchmarks, in a process of its own (so that its memory and CPU
// are its own): a Registry behind registry.listen() with the Worker of
// bench/miniflare/worker.mjs's shape. Prints {"port":N} when listening; then answers
// commands on stdin, one per line: "rss" (bytes), "evict" (evictIdle(); count), "live".
//   node bench/network-server.mjs <dataDir>
import readline from "node:readline";
import { DurableObject, Registry } from "../index.js";

export class Counter extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/ws") {
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server);
      return new Response(null, { status: 101, webSocket: client });
    }
    if (url.pathname === "/do-noop") return new Response("ok");
    const n = ((await this.ctx.storage.get("count")) ?? 0) + 1;
    await this.ctx.storage.put("count", n);
    return new Response(String(n));
  }
  webSocketMessage(ws, message) {
    ws.send(message);
  }
}

const registry = new Registry({ dataDir: process.argv[2], durability: "full" });
const ns = registry.namespace(Counter);
const server = await registry.listen({
  port: 0,
  fetch: (request) => ns.getByName(new URL(request.url).searchParams.get("name") ?? "default").fetch(request),
});
console.log(JSON.stringify({ port: server.port }));

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line === "rss") console.log(String(process.memoryUsage.rss()));
  else if (line === "mem") console.log(JSON.stringify(process.memoryUsage()));
  else if (line === "gc") console.log(String((globalThis.gc?.(), process.memoryUsage.rss())));
  else if (line === "evict") console.log(String(registry.evictIdle()));
  else if (line === "live") console.log(String(registry.liveObjects));
}
await registry.close();
