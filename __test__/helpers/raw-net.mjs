// Raw TCP for tests that must send what no well-behaved client sends: malformed HTTP,
// half a request, WebSocket frames of our own making.
import { randomBytes } from "node:crypto";
import net from "node:net";

/**
 * A TCP connection to `port` on 127.0.0.1 that keeps everything it receives.
 * `closed` resolves when the server closes (or resets) it; `text()` is what came so far.
 */
export function rawConnect(port) {
  const socket = net.connect(port, "127.0.0.1");
  const chunks = [];
  let onData = () => {};
  socket.on("data", (chunk) => {
    chunks.push(chunk);
    onData();
  });
  socket.on("error", () => {}); // a reset is a close too
  const connected = new Promise((resolve) => socket.once("connect", resolve));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  const raw = {
    socket,
    connected,
    closed,
    bytes: () => Buffer.concat(chunks),
    text: () => Buffer.concat(chunks).toString("latin1"),
    write: (data) => socket.write(data),
    /** Resolves once what was received matches `pattern` (or the connection closed: then rejects). */
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(raw.text());
          if (match) {
            onData = () => {};
            resolve(match);
          }
        };
        onData = check;
        check();
        closed.then(() => {
          check();
          reject(new Error(`closed before ${pattern} arrived; got ${JSON.stringify(raw.text().slice(0, 300))}`));
        });
      });
    },
  };
  return raw;
}

/** Sends `request` (a string or bytes) on a new connection; resolves with the first response's status line once the server answered or closed. */
export async function statusOf(port, request) {
  const raw = rawConnect(port);
  raw.write(request);
  try {
    return (await raw.waitFor(/^HTTP\/1\.[01] \d{3}[^\r]*\r\n/))[0].trim();
  } catch {
    return "(closed without an answer)";
  } finally {
    raw.socket.destroy();
  }
}

/** The headers of a WebSocket handshake for `path` (a fresh key). */
export function handshake(path, port, extra = "") {
  const key = randomBytes(16).toString("base64");
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

/**
 * One WebSocket frame as a client sends it. `mask`: a 4-byte key (default random), or null
 * for an unmasked frame; `length` overrides the encoded payload length.
 */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = randomBytes(4), rsv = 0, length } = {}) {
  const data = Buffer.from(payload);
  const size = length ?? data.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
  const masked = mask ? 0x80 : 0;
  if (size < 126) head.push(masked | size);
  else if (size < 65536) head.push(masked | 126, size >> 8, size & 0xff);
  else {
    head.push(masked | 127);
    const big = BigInt(size);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((big >> shift) & 0xffn));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const body = Buffer.from(data);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([Buffer.from(head), Buffer.from(mask), body]);
}

/**
 * Reads server frames from `bytes` (after the handshake's response): [{ opcode, payload }],
 * and how many bytes they took (an incomplete last frame is left out).
 */
export function parseFrames(bytes) {
  const frames = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at] & 0x0f;
    let length = bytes[at + 1] & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > bytes.length) break;
      length = bytes.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    if (start + length > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return { frames, used: at };
}

/**
 * Calls `onFrame({ opcode, payload })` for each server frame arriving on `socket` from now
 * on; `first` is what already arrived after the handshake's response.
 */
export function readFrames(socket, first, onFrame) {
  let buffered = first;
  const take = () => {
    const { frames, used } = parseFrames(buffered);
    buffered = buffered.subarray(used);
    for (const f of frames) onFrame(f);
  };
  socket.on("data", (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    take();
  });
  take();
}

/** The close code of a Close frame's payload (1005 when it carries none). */
export const closeCode = (payload) => (payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
