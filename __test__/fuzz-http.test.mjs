// Fuzzing the built-in server (issue #8: "no input may crash or freeze the process"):
// random and mutated HTTP requests (request lines, headers, chunked bodies, garbage) and
// WebSocket frames (valid, mutated, oversized lengths, bad opcodes, unmasked, fragmented
// control frames) over raw TCP to a registry.listen() server whose handler touches an
// object. After each batch the server must still answer a request and echo on a
// WebSocket; the process must not crash, leak an unhandled rejection, or log more than
// one line per failure. `npm run fuzz` runs it 100 times longer; a failure names its seed.
import assert from "node:assert/strict";
import { test } from "node:test";
import WsClient from "ws";
import { DurableObject, Registry } from "../index.js";
import { describeSeed, fuzzCases, fuzzRandom } from "./helpers/fuzz.mjs";
import { frame, handshake, rawConnect } from "./helpers/raw-net.mjs";

class Target extends DurableObject {
  async fetch(request) {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server);
      return new Response(null, { status: 101, webSocket: client });
    }
    // A body that does not parse makes this throw: the server answers 400 for it.
    const size = (await request.arrayBuffer()).byteLength;
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return new Response(`${n}:${size}`);
  }
  webSocketMessage(ws, message) {
    ws.send(message);
  }
}

const random = fuzzRandom("fuzz-http");
const encoder = new TextEncoder();

const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "BREW", "get", "G\0T", ""];
const TARGETS = ["/", "/a?b=c", "*", "http://other.example/x", "//double", "/%00%ff", "/" + "a".repeat(9000), "/ws", "/.open-do/rpc", "/.open-do/client.js", "example.com:443"];
const VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1 extra", "", "http/1.1"];

function header() {
  const names = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect", "X-Thing", "Content-Type", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", ""];
  const values = ["127.0.0.1", "0", "-1", "5", "99999999999999999999", "chunked", "chunked, chunked", "gzip, chunked", "identity", "close", "keep-alive", "Upgrade", "websocket", "100-continue", "dGhlIHNhbXBsZSBub25jZQ==", "13", "x".repeat(random.int(20000))];
  const name = random.chance(0.1) ? random.string(random.int(10)) : random.pick(names);
  const value = random.chance(0.1) ? random.string(random.int(40)) : random.pick(values);
  const separator = random.pick([": ", ":", " : ", ":\t", "\r\n :"]);
  return `${name}${separator}${value}\r\n`;
}

function chunkedBody() {
  let body = "";
  for (let i = random.int(4); i > 0; i--) {
    const data = "y".repeat(random.int(300));
    const size = random.chance(0.8) ? data.length.toString(16) : random.pick(["zz", "-1", "ffffffffffffffff1", "", " 5", "5;ext=1", "5 ; x"]);
    body += `${size}\r\n${data}\r\n`;
  }
  return body + random.pick(["0\r\n\r\n", "0\r\nTrailer: x\r\n\r\n", "0\r\n", "", "0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"]);
}

/** A request: mostly valid ones, each with a chance of a few mutations. */
function httpRequest() {
  const kind = random.int(5);
  let text;
  if (kind === 0) text = `GET ${random.pick(TARGETS)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  else if (kind === 1) {
    const body = "b".repeat(random.int(2000));
    text = `POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${random.chance(0.8) ? body.length : random.int(5000)}\r\n\r\n${body}`;
  } else if (kind === 2) text = `POST /c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody()}`;
  else if (kind === 3) {
    let headers = "";
    for (let i = random.int(8); i > 0; i--) headers += header();
    text = `${random.pick(METHODS)} ${random.pick(TARGETS)} ${random.pick(VERSIONS)}\r\n${headers}\r\n${random.chance(0.5) ? chunkedBody() : ""}`;
  } else {
    // Pipelined requests.
    text = "";
    for (let i = 1 + random.int(3); i > 0; i--) text += `GET /pipe${i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  }
  return mutate(Buffer.from(text, "latin1"));
}

/** `bytes` with a few random changes (sometimes none). */
function mutate(bytes) {
  let out = bytes;
  for (let n = random.chance(0.4) ? 0 : 1 + random.int(4); n > 0; n--) {
    const at = random.int(out.length + 1);
    switch (random.int(7)) {
      case 0: // flip a bit
        if (out.length) {
          out = Buffer.from(out);
          out[at % out.length] ^= 1 << random.int(8);
        }
        break;
      case 1: // insert random bytes
        out = Buffer.concat([out.subarray(0, at), Buffer.from(random.bytes(1 + random.int(16))), out.subarray(at)]);
        break;
      case 2: // delete a range
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + random.int(32))]);
        break;
      case 3: // duplicate a range
        out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + random.int(64)), out.subarray(at)]);
        break;
      case 4: // truncate
        out = out.subarray(0, at);
        break;
      case 5: // a line-break or NUL where none belongs
        out = Buffer.concat([out.subarray(0, at), Buffer.from(random.pick(["\r\n", "\n", "\r", "\0", " ", "\r\n\r\n"])), out.subarray(at)]);
        break;
      default: // pure garbage instead
        if (random.chance(0.3)) out = Buffer.from(random.bytes(random.int(4096)));
    }
  }
  return out;
}

/** Frames a client could send after a valid handshake: valid, malformed and hostile. */
function wsFrames() {
  const frames = [];
  for (let i = 1 + random.int(6); i > 0; i--) {
    const payload = random.bytes(random.int(random.chance(0.05) ? 200_000 : 200));
    switch (random.int(12)) {
      case 0:
        frames.push(frame(0x1, encoder.encode(random.string(random.int(100)).replace(/[\ud800-\udfff]/g, "?"))));
        break;
      case 1:
        frames.push(frame(0x2, payload));
        break;
      case 2: // ping, pong, close with a valid code
        frames.push(frame(random.pick([0x9, 0xa]), payload.subarray(0, 125)));
        break;
      case 3: // a lying length: huge, or over the 32 MiB limit
        frames.push(frame(random.pick([0x1, 0x2, 0x0]), payload.subarray(0, 10), { length: random.pick([2 ** 53, 2 ** 40, (32 << 20) + 1, 65536, 126]) }));
        break;
      case 4: // reserved opcodes
        frames.push(frame(random.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]), payload.subarray(0, 50)));
        break;
      case 5: // unmasked
        frames.push(frame(random.pick([0x1, 0x2, 0x9]), payload.subarray(0, 50), { mask: null }));
        break;
      case 6: // fragmented control frame, or a control frame over 125 bytes
        frames.push(random.chance(0.5) ? frame(0x9, payload.subarray(0, 10), { fin: false }) : frame(0x9, Buffer.alloc(126 + random.int(100))));
        break;
      case 7: // fragments: continuation without a start, a start never finished, interleaved
        frames.push(frame(random.pick([0x0, 0x1, 0x2]), payload.subarray(0, 30), { fin: random.chance(0.5) }));
        break;
      case 8: // reserved bits
        frames.push(frame(0x1, encoder.encode("rsv"), { rsv: 1 + random.int(7) }));
        break;
      case 9: { // closes: valid, invalid codes, a 1-byte body, a reason that is not UTF-8
        const code = random.pick([1000, 1001, 3000, 4999, 999, 1004, 1005, 1006, 1015, 5000, 65535]);
        const body = random.chance(0.2) ? Buffer.from([1]) : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), random.chance(0.3) ? Buffer.from([0xff, 0xfe]) : Buffer.alloc(0)]);
        frames.push(frame(0x8, body));
        break;
      }
      case 10: // text that is not UTF-8
        frames.push(frame(0x1, Buffer.from([0xc3, 0x28, 0xff])));
        break;
      default:
        frames.push(mutate(frame(random.pick([0x1, 0x2, 0x9]), payload.subarray(0, 100))));
    }
  }
  return Buffer.concat(frames);
}

/** One case: what to send, and a short description for failure messages. */
function nextCase(port) {
  if (random.chance(0.35)) {
    const request = Buffer.from(handshake(random.pick(["/ws", "/.open-do/rpc"]), port), "latin1");
    return { bytes: Buffer.concat([random.chance(0.15) ? mutate(request) : request, wsFrames()]), kind: "websocket" };
  }
  return { bytes: httpRequest(), kind: "http" };
}

/** Sends a case in a few pieces, half-closes, and waits for the server to close (5 s at most). */
async function run(port, bytes) {
  const raw = rawConnect(port);
  await raw.connected;
  let at = 0;
  while (at < bytes.length) {
    const next = random.chance(0.5) ? bytes.length : at + 1 + random.int(bytes.length - at);
    raw.write(bytes.subarray(at, next));
    at = next;
  }
  raw.socket.end();
  let timer;
  await Promise.race([raw.closed, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
  raw.socket.destroy();
}

test("fuzz: random and mutated HTTP requests and WebSocket frames never crash, freeze or flood the log", async () => {
  const leaks = [];
  const onRejection = (reason) => leaks.push(reason);
  process.on("unhandledRejection", onRejection);
  const lines = [];
  const original = console.error;
  console.error = (...args) => lines.push(args.map((a) => (a instanceof Error ? a.stack : String(a))).join(" "));
  const registry = new Registry({ dataDir: ":memory:" });
  const targets = registry.namespace(Target);
  const server = await registry.listen({
    port: 0,
    timeouts: { headers: 2000, idle: 1000, request: 3000 },
    limits: { webSocketBufferBytes: 1 << 20 },
    fetch: (request) => targets.getByName("fuzz").fetch(request),
  });
  const port = server.port;
  const ws = new WsClient(`ws://127.0.0.1:${port}/ws`);
  try {
    await new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject));
    const echoes = [];
    ws.on("message", (data) => echoes.push(String(data)));
    const batches = fuzzCases(60);
    for (let batch = 0; batch < batches; batch++) {
      const cases = Array.from({ length: 16 }, () => nextCase(port));
      await Promise.all(cases.map((c) => run(port, c.bytes)));
      const context = `batch ${batch} (${describeSeed()}); cases: ${cases.map((c) => `${c.kind} ${JSON.stringify(c.bytes.subarray(0, 60).toString("latin1"))}`).join(", ")}`;

      const response = await fetch(`${server.url}/check`, { method: "POST", body: "abc", signal: AbortSignal.timeout(10_000) });
      assert.equal(response.status, 200, context);
      assert.match(await response.text(), /^\d+:3$/, context);
      ws.send(`echo ${batch}`);
      const deadline = Date.now() + 10_000;
      while (!echoes.includes(`echo ${batch}`)) {
        assert.ok(Date.now() < deadline, `no WebSocket echo after ${context}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.deepEqual(leaks, [], `unhandled rejections after ${context}`);
      const multiline = lines.filter((l) => l.includes("\n"));
      assert.deepEqual(multiline, [], `a failure was logged as more than one line after ${context}`);
    }
    assert.ok(lines.length <= 20, `the log stays short: ${lines.length} lines\n${lines.join("\n")}`);
  } finally {
    ws.terminate();
    console.error = original;
    process.off("unhandledRejection", onRejection);
    await registry.close();
  }
});
