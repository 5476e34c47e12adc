// WebSockets of registry.listen() against peers that do not read (issue #8, "every buffer
// has a bound"): what waits to go out to one socket is bounded (limits.webSocketBufferBytes,
// then 1011), and a peer whose answers back up is no longer read — pongs included.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import WsClient from "ws";
import { DurableObject, Registry } from "../index.js";
import { closeCode, frame, handshake, parseFrames, rawConnect, readFrames } from "./helpers/raw-net.mjs";

const errors = [];

class Flood extends DurableObject {
  fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) {
    const [command, count, size] = String(message).split(" ");
    if (command === "flood") {
      const chunk = new Uint8Array(Number(size));
      for (let i = 0; i < Number(count); i++) ws.send(chunk);
      return;
    }
    ws.send(`echo:${message}`);
  }
  webSocketError(ws, error) {
    errors.push(error.message);
  }
}

/** Waits for `check()` to hold; fails (rather than hanging) after 30 s. */
async function until(check, what) {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not so after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("a peer that stops reading is closed with 1011 once limits.webSocketBufferBytes wait for it; the object hears why, the log gets one line, and the server keeps serving", async () => {
  const lines = [];
  const original = console.error;
  console.error = (...args) => lines.push(args.map(String).join(" "));
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Flood);
  const server = await registry.listen({
    port: 0,
    limits: { webSocketBufferBytes: 1 << 20 },
    fetch: (request) => (request.headers.get("upgrade") ? ns.getByName(new URL(request.url).pathname).fetch(request) : new Response("still here")),
  });
  const base = server.url.replace("http", "ws");
  errors.length = 0;
  const clients = [];
  try {
    const peer = new WsClient(`${base}/stuck`);
    clients.push(peer);
    await new Promise((resolve, reject) => peer.on("open", resolve).on("error", reject));
    const closed = new Promise((resolve) => peer.on("close", (code) => resolve(code)));
    let received = 0;
    peer.on("message", () => received++);
    peer.pause(); // stops reading: what the server sends piles up
    // 200 answers of 128 KiB: 25 MiB, far more than TCP's buffers and the 1 MiB limit.
    peer.send("flood 200 131072");
    await until(() => errors.length === 1, "the object hears the socket failed");
    assert.match(errors[0], /1011/);
    assert.match(errors[0], /did not read/);

    const echo = new WsClient(`${base}/other`);
    clients.push(echo);
    await new Promise((resolve) => echo.on("open", resolve));
    echo.send("hi");
    assert.equal(String(await new Promise((resolve) => echo.on("message", resolve))), "echo:hi", "other sockets are served meanwhile");
    echo.close();
    assert.equal(await (await fetch(server.url)).text(), "still here");

    peer.resume();
    assert.equal(await closed, 1011, "the peer, reading again, finds our Close with 1011");
    assert.ok(received < 200, `what had not begun to go out was dropped (${received} of 200 arrived)`);
    const logged = lines.filter((l) => /1011/.test(l));
    assert.equal(logged.length, 1, lines.join("\n"));
    assert.match(logged[0], /webSocketBufferBytes/, "the line names the option");
  } finally {
    for (const client of clients) client.terminate(); // on failure too: they keep the process alive
    console.error = original;
    await registry.close();
  }
});

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "net");

test("a peer that sends pings but never reads the pongs is no longer read: it cannot make the server buffer without bound", async () => {
  const child = spawn(process.execPath, [path.join(fixtures, "server.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { port, rss: baseline } = JSON.parse((await lines.next()).value);
  const peer = rawConnect(port);
  try {
    peer.write(handshake("/ws", port));
    const [head] = await peer.waitFor(/^HTTP\/1\.1 101 [^]*?\r\n\r\n/);
    peer.socket.pause(); // reads nothing from here on
    // 1.5 million pings of 125 bytes, the most a pong echoes (190 MB, far more than TCP's
    // buffers on both sides hold): 3 million took a server from 66 MB to over 400 MB.
    const batches = 90;
    const pings = Buffer.concat(Array.from({ length: 1 << 14 }, () => frame(0x9, Buffer.alloc(125, 7))));
    for (let i = 0; i < batches; i++) peer.socket.write(pings);
    let drained = peer.socket.writableLength === 0;
    peer.socket.on("drain", () => (drained = true));
    // Either the server reads everything (the old behaviour), or it stops reading once
    // its pongs back up: then our writes stay in our own buffers.
    let last = -1;
    let still = 0;
    while (!drained && still < 50) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const left = peer.socket.writableLength;
      still = left === last ? still + 1 : 0;
      last = left;
    }
    assert.equal(drained, false, "the server stopped reading a peer that does not read its pongs");

    // Reading again: every ping is answered, in order, and the socket still works.
    const stats = new Promise((resolve) => {
      let pongs = 0;
      readFrames(peer.socket, peer.bytes().subarray(head.length), (f) => {
        if (f.opcode === 0xa) pongs++;
        if (f.opcode === 0x1) resolve({ pongs, ...JSON.parse(f.payload.toString()) });
      });
    });
    peer.write(frame(0x1, "stats"));
    peer.socket.resume();
    const { pongs, peak } = await stats;
    assert.equal(pongs, batches << 14, "every ping got its pong");
    // The old behaviour buffered every pong: +185 MB here.
    const grown = (peak - baseline) / 2 ** 20;
    assert.ok(grown < 100, `the server grew by ${grown.toFixed(0)} MiB`);
  } finally {
    peer.socket.destroy();
    child.stdin.end();
    await exited;
  }
});

test("once the server gave up on a peer that does not read, nothing more of the peer's reaches the object, and the peer's answer to the 1011 ends the connection", async () => {
  const registry = new Registry({ dataDir: ":memory:" });
  const ns = registry.namespace(Flood);
  const server = await registry.listen({ port: 0, limits: { webSocketBufferBytes: 1 << 16 }, fetch: (request) => ns.getByName("x").fetch(request) });
  const peer = rawConnect(server.port);
  try {
    peer.write(handshake("/", server.port));
    await peer.waitFor(/^HTTP\/1\.1 101 [^]*?\r\n\r\n/);
    peer.socket.pause();
    peer.write(frame(0x1, "flood 100 65536"));
    errors.length = 0;
    await until(() => errors.length === 1, "the object hears the socket failed");
    // Frames the server cannot read any more (it gave up on the peer) are not echoed.
    for (let i = 0; i < 100; i++) peer.write(frame(0x1, `late ${i}`));
    peer.socket.resume();
    const { frames } = await new Promise((resolve) => {
      const check = () => {
        const parsed = parseFrames(peer.bytes().subarray(peer.text().indexOf("\r\n\r\n") + 4));
        if (parsed.frames.some((f) => f.opcode === 0x8)) resolve(parsed);
      };
      peer.socket.on("data", check);
      check();
    });
    const close = frames.find((f) => f.opcode === 0x8);
    assert.equal(closeCode(close.payload), 1011);
    assert.equal(frames.filter((f) => f.opcode === 0x1).length, 0, "nothing was echoed after the server gave up");
    peer.write(frame(0x8, Buffer.from([0x03, 0xf3]))); // our answer: 1011
    await peer.closed;
  } finally {
    peer.socket.destroy();
    await registry.close();
  }
});

test("a peer whose messages wait for a busy object is no longer read: what waits for the object is bounded, and every message arrives once it is free", async () => {
  const child = spawn(process.execPath, [path.join(fixtures, "server.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const { url, rss: baseline } = JSON.parse((await lines.next()).value);
  const peer = new WsClient(`${url.replace("http", "ws")}/ws`);
  const replies = [];
  let replied = () => {};
  peer.on("message", (data) => {
    replies.push(String(data));
    replied();
  });
  const reply = () => (replies.length > 0 ? Promise.resolve(replies.shift()) : new Promise((resolve) => (replied = () => resolve(replies.shift()))));
  try {
    await new Promise((resolve, reject) => peer.once("open", resolve).once("error", reject));
    peer.send("hold"); // the object's input gate stays closed until GET /release
    assert.equal(await reply(), "holding");
    // 200 messages of 1 MiB wait for the object: the old behaviour read them all into
    // its mailbox (+200 MiB); now the server stops reading the peer, and our sends stay
    // in our own buffers.
    const count = 200;
    const chunk = new Uint8Array(1 << 20);
    for (let i = 0; i < count; i++) peer.send(chunk);
    let last = -1;
    let still = 0;
    while (peer.bufferedAmount > 0 && still < 50) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      still = peer.bufferedAmount === last ? still + 1 : 0;
      last = peer.bufferedAmount;
    }
    assert.ok(peer.bufferedAmount > 0, "the server stopped reading a peer whose messages wait for the object");

    // The object is free again: every message reaches it, in order, and the socket works.
    assert.equal(await (await fetch(`${url}/release`)).text(), "ok");
    peer.send("stats");
    const { received, peak } = JSON.parse(await reply());
    assert.equal(received, count << 20, "every byte reached the object");
    const grown = (peak - baseline) / 2 ** 20;
    assert.ok(grown < 100, `the server grew by ${grown.toFixed(0)} MiB`);
    peer.send("still here");
    assert.equal(await reply(), "still here");
  } finally {
    peer.terminate();
    child.stdin.end();
    await exited;
  }
});
