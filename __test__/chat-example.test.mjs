// examples/chat driven end to end in headless Chromium (Debian's `chromium`, driven by
// playwright-core): two people chat, the room hibernates and wakes with its sessions, a
// newcomer gets the history, and keep-alive pings are answered without waking the room.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { chromium } from "playwright-core";
import { start } from "../examples/chat/server.mjs";
import { tempDir } from "./helpers/objects.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

test("the chat example works in a real browser, across hibernation", async () => {
  assert.ok(existsSync(CHROMIUM), `this test needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium)`);
  const { registry, server } = await start({ port: 0, dataDir: tempDir() });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const join = async (name) => {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.fill("#name", name);
      await page.fill("#room", "garden");
      await page.click("#join button");
      await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"));
      return page;
    };
    const said = (page, text) => page.waitForFunction((t) => [...document.querySelectorAll("#log p")].some((p) => p.textContent === t), text);

    const alice = await join("alice");
    const bob = await join("bob");
    await said(alice, "bob joined");
    await alice.fill("#text", "hello bob");
    await alice.click("#send button");
    await said(bob, "alice: hello bob");

    assert.equal(registry.evictIdle(), 1, "the room holds only hibernatable sockets: it hibernates");
    assert.equal(registry.liveObjects, 0);
    const pong = await bob.evaluate(
      () =>
        new Promise((resolve) => {
          window.chatSocket.addEventListener("message", (e) => e.data === "pong" && resolve(e.data));
          window.chatSocket.send("ping");
        }),
    );
    assert.equal(pong, "pong");
    assert.equal(registry.liveObjects, 0, "the keep-alive ping was answered without waking the room");

    await bob.fill("#text", "hi alice, from after hibernation");
    await bob.click("#send button");
    await said(alice, "bob: hi alice, from after hibernation");
    assert.equal(registry.liveObjects, 1, "the message woke the room");

    const carol = await join("carol");
    await said(carol, "alice: hello bob");
    await said(carol, "bob: hi alice, from after hibernation");
    await carol.waitForFunction(() => document.getElementById("who").textContent === "alice, bob, carol");
    await bob.close();
    await said(alice, "bob left");
  } finally {
    await browser.close();
    await registry.close();
  }
});
