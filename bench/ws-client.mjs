// WebSocket clients for the network benchmarks, in a process of their own.
//   node bench/ws-client.mjs echo <url> <n>      n sequential round trips; prints the ms
//   node bench/ws-client.mjs hold <url> <n> <rooms>
//        opens n connections spread over `rooms` objects (?name=room-<i % rooms>),
//        prints "ready", and keeps them until stdin closes
import WebSocket from "ws";

const [mode, url, count, rooms = "1"] = process.argv.slice(2);
const n = Number(count);

function open(target) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

if (mode === "echo") {
  const ws = await open(url);
  const roundTrip = () =>
    new Promise((resolve) => {
      ws.once("message", resolve);
      ws.send("hello, echo");
    });
  for (let i = 0; i < 200; i++) await roundTrip(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await roundTrip();
  console.log(String(performance.now() - t0));
  ws.terminate();
  process.exit(0);
} else if (mode === "hold") {
  const sockets = [];
  const target = (i) => `${url}${url.includes("?") ? "&" : "?"}name=room-${i % Number(rooms)}`;
  // 100 handshakes at a time: enough to be quick, few enough not to overflow accept queues.
  for (let i = 0; i < n; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => open(target(i + j))))));
  }
  console.log("ready");
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  console.error("usage: ws-client.mjs echo <url> <n> | hold <url> <n> <rooms>");
  process.exit(2);
}
