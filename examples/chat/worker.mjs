// The Worker in front of the rooms: serves the page and routes each room's WebSocket to
// its object — the same code would run on Cloudflare with a ROOMS binding.
import { readFileSync } from "node:fs";

const page = readFileSync(new URL("./index.html", import.meta.url), "utf8");

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = /^\/rooms\/([\w-]{1,64})\/websocket$/.exec(url.pathname);
    if (match) return env.ROOMS.getByName(match[1]).fetch(request);
    if (url.pathname === "/") return new Response(page, { headers: { "content-type": "text/html;charset=utf-8" } });
    return new Response("Not found", { status: 404 });
  },
};
