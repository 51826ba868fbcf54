// Browser end-to-end: Debian's chromium, driven by playwright-core, opens two
// pages of the unmodified tutorial page (public/index.html) served by the Go
// server, and they chat both ways. Messages are rendered as text: <b> shows
// as the literal tags. The page is also run with its client forced onto
// WebSocket only and onto polling only (an init script wraps window.io; the
// page itself is unchanged).
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
const pollMs = 20; // waitForFunction polls on a timer: background tabs get no animation frames
const screenshotPath = "/tmp/chat.png";

let browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup.sh --test (apt-get install -y chromium)`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

// forceTransports is an init script: when the bundle defines window.io, it is
// wrapped so that io(...) uses only the given transports.
function forceTransports(transports) {
  Object.defineProperty(window, "io", {
    configurable: true,
    enumerable: true,
    get() {
      return window.__forcedIo;
    },
    set(real) {
      const forced = function (uri, opts) {
        if (typeof uri === "object" && uri !== null) [uri, opts] = [undefined, uri];
        return real(uri, { ...opts, transports });
      };
      Object.assign(forced, real);
      window.__forcedIo = forced;
    },
  });
}

// newChatContext opens a browser context, closed before the server stops;
// transports, if given, are forced on every page of it.
async function newChatContext(srv, transports) {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  srv.defer(() => context.close());
  if (transports) await context.addInitScript(forceTransports, transports);
  return context;
}

// openChat opens the tutorial page and waits until its socket is connected.
// It records console errors, page errors, failed requests, the Socket.IO
// requests made over polling and the WebSockets opened.
async function openChat(context, srv, name) {
  const page = await context.newPage();
  const seen = { name, errors: [], polling: 0, websockets: [], bundle: null };
  page.on("console", (m) => {
    // The tutorial has no favicon: its 404 is expected, as with Node.
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) {
      seen.errors.push(`console: ${m.text()} (${m.location().url})`);
    }
  });
  page.on("pageerror", (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => seen.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("request", (r) => {
    if (r.url().includes("/socket.io/?") && r.url().includes("transport=polling")) seen.polling++;
  });
  page.on("websocket", (ws) => seen.websockets.push(ws.url()));
  page.on("response", (r) => {
    if (new URL(r.url()).pathname === "/socket.io/socket.io.js") {
      seen.bundle = { status: r.status(), type: r.headers()["content-type"] ?? "" };
    }
  });
  const res = await page.goto(`${srv.url}/`, { waitUntil: "load", timeout: waitMs });
  assert.equal(res.status(), 200, "GET /");
  assert.equal(await page.title(), "Chat App");
  await page.waitForFunction(() => typeof socket !== "undefined" && socket.connected, null, { timeout: waitMs, polling: pollMs });
  assert.equal(seen.bundle?.status, 200, "/socket.io/socket.io.js loaded");
  assert.match(seen.bundle.type, /javascript/, "/socket.io/socket.io.js content type");
  assert.equal(await page.evaluate(() => typeof io), "function");
  return { page, seen };
}

// send types text into #message and clicks #sendBtn, as a user would, in
// the tab brought to the front (a background tab gets no animation frames,
// which playwright's click waits for).
async function send({ page }, text) {
  await page.bringToFront();
  await page.fill("#message", text);
  await page.click("#sendBtn");
}

// waitForTexts waits until the page's #messages shows exactly texts, one <p>
// each, in order.
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
    const got = await page.evaluate(() => [...document.querySelectorAll("#messages > p")].map((p) => p.innerText));
    throw new Error(`${seen.name}: #messages shows ${JSON.stringify(got)}, want ${JSON.stringify(texts)}: ${err.message}`);
  }
}

// chatBothWays runs the tutorial's scenario on two pages: A → both, B →
// both, then a message with HTML, which must show as text.
async function chatBothWays(a, b) {
  const want = [];
  for (const [from, text] of [[a, "hello from A"], [b, "hi A, B here"], [a, "<b>bold</b>"]]) {
    await send(from, text);
    want.push(text);
    await Promise.all([waitForTexts(a, want), waitForTexts(b, want)]);
  }
  for (const { page, seen } of [a, b]) {
    const html = await page.evaluate(() => {
      const ps = [...document.querySelectorAll("#messages > p")];
      const last = ps[ps.length - 1];
      return { text: last.innerText, bolds: last.querySelectorAll("b").length, anyBold: document.querySelectorAll("#messages b").length };
    });
    assert.equal(html.text, "<b>bold</b>", `${seen.name}: the tags show as text`);
    assert.equal(html.bolds, 0, `${seen.name}: the <p> has no <b> element`);
    assert.equal(html.anyBold, 0, `${seen.name}: #messages has no <b> element`);
    assert.equal(await page.inputValue("#message"), seen.name === "A" ? "<b>bold</b>" : "hi A, B here",
      "the page leaves the input as typed");
  }
}

function assertNoErrors(...pages) {
  for (const { seen } of pages) assert.deepEqual(seen.errors, [], `${seen.name}: console or page errors`);
}

serverTest("two pages of the tutorial chat both ways; HTML shows as text", { timeout: 60_000 }, async (t, srv) => {
  const context = await newChatContext(srv);
  const a = await openChat(context, srv, "A");
  const b = await openChat(context, srv, "B");
  await chatBothWays(a, b);
  // The page's client upgrades to WebSocket as it does with Node.
  for (const { page } of [a, b]) {
    await page.waitForFunction(() => socket.io.engine.transport.name === "websocket", null, { timeout: waitMs, polling: pollMs });
  }
  const ids = await Promise.all([a, b].map(({ page }) => page.evaluate(() => socket.id)));
  for (const id of ids) {
    await srv.waitForLog((r) => r.msg === "A new user has connected" && r.id === id, waitMs, `the connection of ${id}`);
  }
  assertNoErrors(a, b);
  await a.page.screenshot({ path: screenshotPath });
});

for (const transport of ["websocket", "polling"]) {
  serverTest(`the tutorial page chats with its client on ${transport} only`, { timeout: 60_000 }, async (t, srv) => {
    const context = await newChatContext(srv, [transport]);
    const a = await openChat(context, srv, "A");
    const b = await openChat(context, srv, "B");
    await chatBothWays(a, b);
    for (const { page, seen } of [a, b]) {
      assert.equal(await page.evaluate(() => socket.io.engine.transport.name), transport, `${seen.name}: transport`);
      if (transport === "websocket") {
        assert.equal(seen.polling, 0, `${seen.name}: no polling request`);
        assert.equal(seen.websockets.length, 1, `${seen.name}: one WebSocket`);
      } else {
        assert.ok(seen.polling > 0, `${seen.name}: polling requests`);
        assert.deepEqual(seen.websockets, [], `${seen.name}: no WebSocket`);
      }
    }
    assertNoErrors(a, b);
  });
}

// metric reads one Prometheus sample (no labels, or the given ones).
async function metric(addr, name, labels = "") {
  const text = await (await fetch(`http://${addr}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

serverTest("on polling only, the page's later requests are served on the event loop (-polling-keepalive, the default)",
  { timeout: 60_000, flags: ["-metrics-addr", "127.0.0.1:0"] }, async (t, srv) => {
    const context = await newChatContext(srv, ["polling"]);
    const a = await openChat(context, srv, "A");
    const b = await openChat(context, srv, "B");
    await chatBothWays(a, b);
    // Chromium's GETs come without Origin, its POSTs with it, on shared
    // connections: each connection goes back to net/http once per kind,
    // then the fast path serves both.
    const want = ["hello from A", "hi A, B here", "<b>bold</b>"];
    for (let i = 0; i < 20; i++) {
      const text = `${i % 2 ? "B" : "A"} says ${i}`;
      await send(i % 2 ? b : a, text);
      want.push(text);
    }
    await Promise.all([waitForTexts(a, want), waitForTexts(b, want)]);
    const { addr } = await srv.waitForLog((r) => r.msg === "metrics listening", 5_000, '"metrics listening"');
    const served = await metric(addr, "engineio_polling_keepalive_requests_total");
    const polls = a.seen.polling + b.seen.polling;
    const back = await metric(addr, "engineio_polling_keepalive_moves_total", '{to="net_http"}');
    t.diagnostic(`polling requests: ${polls}, served on the event loop: ${served}, connections given back: ${back}`);
    assert.ok(served >= polls / 2, `${served} of the pages' ${polls} polling requests served on the event loop, want half at least`);
    assert.ok(back <= 8, `connections given back to net/http: ${back}, want a few (two kinds of request on each of a few connections)`);
    assertNoErrors(a, b);
  });
