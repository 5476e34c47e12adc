// Our side of the remote RPC benchmark, in a process of its own: objects behind
// registry.listen() (Cap'n Web at /.open-do/rpc). Prints {"url"}; stops when stdin closes.
import { DurableObject, Registry } from "../index.js";

export class Counter extends DurableObject {
  ping() {
    return 1;
  }
  async increment() {
    const n = ((await this.ctx.storage.get("count")) ?? 0) + 1;
    await this.ctx.storage.put("count", n);
    return n;
  }
}

const registry = new Registry({ dataDir: process.argv[2], durability: "full" });
registry.namespace(Counter);
const server = await registry.listen({ port: 0, fetch: () => new Response("remote bench") });
console.log(JSON.stringify({ url: server.url }));
process.stdin.resume();
process.stdin.on("end", () => registry.close().then(() => process.exit(0)));
