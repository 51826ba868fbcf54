// Browser end-to-end with the msgpack parser: Debian's chromium, driven by
// playwright-core, loads the served socket.io.msgpack.min.js bundle
// (test/pages/msgpack.html) and chats, text, binary and objects, with a
// tab on the default bundle, under -parser auto; and alone under -parser
// msgpack. The tabs' WebSocket frames show which parser each one speaks.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before } from "node:test";
import { chromium } from "playwright-core";
import { serverTest } from "../lib/server.mjs";

const chromiumPath = "/usr/bin/chromium";
const chromiumFlags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];
const waitMs = 10_000;
const pollMs = 20;

let browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup.sh --test (apt-get install -y chromium)`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

// openTab opens pagePath in a new tab and waits until its socket is
// connected over WebSocket; it records the Socket.IO frames the tab sends
// (binary ones as "bin").
async function openTab(srv, pagePath, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  srv.defer(() => context.close());
  const page = await context.newPage();
  const tab = { page, name, errors: [], sent: [] };
  page.on("console", (m) => {
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) tab.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => tab.errors.push(`pageerror: ${e.message}`));
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => {
      if (typeof f.payload !== "string") tab.sent.push("bin");
      else if (f.payload.startsWith("4")) tab.sent.push(f.payload);
    });
  });
  const res = await page.goto(`${srv.url}${pagePath}`, { waitUntil: "load", timeout: waitMs });
  assert.equal(res.status(), 200, `GET ${pagePath}`);
  await page.waitForFunction(() => typeof socket !== "undefined" && socket.connected && socket.io.engine.transport.name === "websocket",
    null, { timeout: waitMs, polling: pollMs });
  return tab;
}

const shown = ({ page }) => page.evaluate(() => [...document.querySelectorAll("#messages > p")].map((p) => p.innerText));

async function waitForTexts(tab, texts) {
  try {
    await tab.page.waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll("#messages > p")].map((p) => p.innerText);
        return got.length === want.length && got.every((t, i) => t === want[i]);
      },
      texts,
      { timeout: waitMs, polling: pollMs },
    );
  } catch (err) {
    throw new Error(`${tab.name}: #messages shows ${JSON.stringify(await shown(tab))}, want ${JSON.stringify(texts)}: ${err.message}`);
  }
}

async function send({ page }, text) {
  await page.fill("#message", text);
  await page.click("#sendBtn");
}

const object = '{"n":1.5,"ok":true,"none":null,"list":["a",2],"bytes":"binary:7,8"}';

serverTest("[chromium] -parser auto: the msgpack bundle and the default bundle chat together",
  { flags: ["-parser", "auto", "-public", "test/pages"], timeout: 60_000 }, async (t, srv) => {
    const bundle = await fetch(`${srv.url}/socket.io/socket.io.msgpack.min.js`);
    assert.equal(bundle.status, 200, "the msgpack bundle is served");
    const mp = await openTab(srv, "/msgpack.html", "msgpack tab");
    const js = await openTab(srv, "/msgpack.html?json", "json tab");

    await send(mp, "hello from msgpack");
    await waitForTexts(js, ["hello from msgpack"]);
    await send(js, "hello from json");
    await mp.page.click("#sendBin");
    await waitForTexts(js, ["hello from msgpack", "hello from json", "binary:1,2,3,255"]);
    await js.page.click("#sendObj");
    await waitForTexts(mp, ["hello from msgpack", "hello from json", "binary:1,2,3,255", object]);
    await mp.page.click("#sendObj");
    const want = ["hello from msgpack", "hello from json", "binary:1,2,3,255", object, object];
    await Promise.all([waitForTexts(mp, want), waitForTexts(js, want)]);

    assert.ok(mp.sent.includes("bin") && !mp.sent.some((f) => f.startsWith("42")), `the msgpack tab sent msgpack: ${mp.sent}`);
    assert.ok(js.sent.some((f) => f.startsWith("42")), `the json tab sent JSON: ${js.sent}`);
    assert.deepEqual([...mp.errors, ...js.errors], []);
  });

serverTest("[chromium] -parser msgpack: the msgpack bundle chats", { flags: ["-parser", "msgpack", "-public", "test/pages"], timeout: 60_000 },
  async (t, srv) => {
    const a = await openTab(srv, "/msgpack.html", "tab a");
    const b = await openTab(srv, "/msgpack.html", "tab b");
    await send(a, "héllo 🎉");
    await waitForTexts(b, ["héllo 🎉"]);
    await b.page.click("#sendBin");
    await waitForTexts(a, ["héllo 🎉", "binary:1,2,3,255"]);
    await a.page.click("#sendObj");
    const want = ["héllo 🎉", "binary:1,2,3,255", object];
    await Promise.all([waitForTexts(a, want), waitForTexts(b, want)]);
    assert.deepEqual([...a.errors, ...b.errors], []);
  });
