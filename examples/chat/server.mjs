// Runs the chat: `npm start` here, then open the printed address in two browser tabs.
import { Registry } from "../../index.js";
import { ChatRoom } from "./chat-room.mjs";
import worker from "./worker.mjs";

export async function start({ port = Number(process.env.PORT ?? 8787), dataDir = process.env.DATA_DIR ?? ".open-do", hibernationTimeout } = {}) {
  const env = {};
  const registry = new Registry({ dataDir, env, hibernationTimeout });
  env.ROOMS = registry.namespace(ChatRoom);
  const server = await registry.listen({ port, fetch: worker.fetch });
  return { registry, server };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { registry, server } = await start();
  console.log(`Chat on ${server.url} (Ctrl-C stops it)`);
  process.once("SIGINT", () => registry.close().then(() => process.exit(0)));
}
