// Browser end-to-end with WebSocket compression: Debian's chromium, driven
// by playwright-core, opens two pages of the unmodified tutorial page served
// by the Go server run with -ws-compression, and they chat both ways, short
// messages and a long one. Chromium offers "permessage-deflate;
// client_max_window_bits" and compresses every message it sends once the
// extension is negotiated; the test reads the server's answer to the
// WebSocket handshake through the DevTools protocol
// (Network.webSocketHandshakeResponseReceived), the server's log of the
// negotiation, and its counters of compressed messages.
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
const negotiatedExtension = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

let browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup.sh --test (apt-get install -y chromium)`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

// openChat opens the tutorial page, recording the Sec-WebSocket-Extensions
// of every WebSocket handshake answer (DevTools' Network domain), and waits
// until its socket is connected and upgraded to WebSocket.
async function openChat(context, srv, name) {
  const page = await context.newPage();
  const seen = { name, errors: [], extensions: [] };
  page.on("console", (m) => {
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) seen.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => seen.errors.push(`pageerror: ${e.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => {
    const headers = e.response.headers ?? {};
    const key = Object.keys(headers).find((k) => k.toLowerCase() === "sec-websocket-extensions");
    seen.extensions.push(key ? headers[key] : "");
  });
  const res = await page.goto(`${srv.url}/`, { waitUntil: "load", timeout: waitMs });
  assert.equal(res.status(), 200, "GET /");
  await page.waitForFunction(() => typeof socket !== "undefined" && socket.connected && socket.io.engine.transport.name === "websocket",
    null, { timeout: waitMs, polling: pollMs });
  return { page, seen };
}

async function send({ page }, text) {
  await page.bringToFront();
  await page.fill("#message", text);
  await page.click("#sendBtn");
}

async function waitForTexts({ page, seen }, texts) {
  try {
    await page.waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll("#messages > p")].map((p) => p.innerText);
        return got.length === want.length && got.every((t, i) => t === want[i]);
      },
      texts,
      { timeout: waitMs, polling: pollMs },
    );
  } catch (err) {
    const got = await page.evaluate(() => [...document.querySelectorAll("#messages > p")].map((p) => p.innerText.slice(0, 80)));
    throw new Error(`${seen.name}: #messages shows ${JSON.stringify(got)}: ${err.message}`);
  }
}

// counter reads one Prometheus counter (no labels, or the given ones).
async function counter(addr, name, labels = "") {
  const text = await (await fetch(`http://${addr}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

serverTest("two pages of the tutorial chat over compressed WebSockets (-ws-compression)",
  { timeout: 60_000, flags: ["-ws-compression", "-metrics-addr", "127.0.0.1:0"] }, async (t, srv) => {
    const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
    srv.defer(() => context.close());
    const a = await openChat(context, srv, "A");
    const b = await openChat(context, srv, "B");
    for (const { page, seen } of [a, b]) {
      assert.deepEqual(seen.extensions, [negotiatedExtension], `${seen.name}: the extension the server answered`);
      const sid = await page.evaluate(() => socket.io.engine.id);
      await srv.waitForLog((r) => r.msg === "websocket compression negotiated" && r.sid === sid, waitMs,
        `the negotiation of ${sid}`);
    }

    const long = "a long message, compressed both ways.".repeat(60); // over the 1024-byte threshold
    const want = [];
    for (const [from, text] of [[a, "hello from A"], [b, "hi A, B here"], [a, long], [b, long.toUpperCase()]]) {
      await send(from, text);
      want.push(text);
      await Promise.all([waitForTexts(a, want), waitForTexts(b, want)]);
    }

    const { addr } = await srv.waitForLog((r) => r.msg === "metrics listening", waitMs, '"metrics listening"');
    assert.equal(await counter(addr, "engineio_ws_deflate_negotiated_total"), 2, "WebSockets that negotiated compression");
    assert.equal(await counter(addr, "engineio_ws_deflated_messages_total"), 4,
      "messages sent compressed: the two long ones, to both pages (the short ones are under the threshold)");
    const payload = await counter(addr, "engineio_ws_deflated_bytes_total", '{of="payload"}');
    const wire = await counter(addr, "engineio_ws_deflated_bytes_total", '{of="wire"}');
    assert.ok(wire * 4 < payload, `compressed to ${wire} bytes from ${payload}`);
    for (const { seen } of [a, b]) assert.deepEqual(seen.errors, [], `${seen.name}: console or page errors`);
  });
