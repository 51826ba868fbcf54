// Browser end-to-end with -history: Debian's chromium, driven by
// playwright-core. A tab opened after a conversation shows it: the
// unmodified tutorial page (public/index.html) shows the newest messages,
// and our page with the Socket.IO tutorial's last steps
// (test/pages/history.html: auth.serverOffset, client offsets, retries)
// shows the whole conversation, and a tab that was offline for a while gets
// exactly what it missed when it reconnects.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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

const dir = mkdtempSync(path.join(tmpdir(), "chat-history-browser-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const historyFile = () => path.join(dir, `chat-${files++}.db`);

let browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup.sh --test (apt-get install -y chromium)`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

// openTab opens pagePath in a new tab and waits until its socket is
// connected; console and page errors are collected.
async function openTab(srv, pagePath, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  srv.defer(() => context.close());
  const page = await context.newPage();
  const tab = { page, name, errors: [] };
  page.on("console", (m) => {
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) tab.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => tab.errors.push(`pageerror: ${e.message}`));
  const res = await page.goto(`${srv.url}${pagePath}`, { waitUntil: "load", timeout: waitMs });
  assert.equal(res.status(), 200, `GET ${pagePath}`);
  await page.waitForFunction(() => typeof socket !== "undefined" && socket.connected, null, { timeout: waitMs, polling: pollMs });
  return tab;
}

async function send({ page }, text) {
  await page.bringToFront();
  await page.fill("#message", text);
  await page.click("#sendBtn");
}

const shown = ({ page }) => page.evaluate(() => [...document.querySelectorAll("#messages > p")].map((p) => p.innerText));

// waitForTexts waits until the tab's #messages shows exactly texts, in order.
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

// chat sends each [tab, text] and waits until every tab shows everything so far.
async function chat(tabs, lines, want) {
  for (const [from, text] of lines) {
    await send(from, text);
    want.push(text);
    await Promise.all(tabs.map((t) => waitForTexts(t, want)));
  }
}

serverTest("the unmodified tutorial page: a tab opened after a conversation shows it",
  { flags: ["-history", historyFile(), "-history-last", "100"], timeout: 60_000 }, async (t, srv) => {
    const a = await openTab(srv, "/", "A");
    const b = await openTab(srv, "/", "B");
    const want = [];
    await chat([a, b], [[a, "hello from A"], [b, "hi A, B here"], [a, "<b>bold</b>"]], want);
    const c = await openTab(srv, "/", "C (opened later)");
    await waitForTexts(c, want);
    await chat([a, b, c], [[c, "C joins in"]], want);
    for (const tab of [a, b, c]) assert.deepEqual(tab.errors, [], `${tab.name}: errors`);
  });

serverTest("the tutorial's final page: late tab, and an offline tab that catches up exactly",
  { flags: ["-history", historyFile(), "-public", "test/pages"], timeout: 60_000 }, async (t, srv) => {
    const a = await openTab(srv, "/history.html", "A");
    const b = await openTab(srv, "/history.html", "B");
    const want = [];
    await chat([a, b], [[a, "one"], [b, "two"], [a, "three"]], want);

    // A goes away for a while (as when the network drops), B goes on.
    await a.page.evaluate(() => socket.disconnect());
    await chat([b], [[b, "four"], [b, "five"]], want);
    assert.deepEqual(await shown(a), ["one", "two", "three"]);
    await a.page.evaluate(() => socket.connect());
    await waitForTexts(a, want); // exactly the missed two, once each
    assert.equal(await a.page.evaluate(() => socket.auth.serverOffset), 5);

    // A tab opened now shows the whole conversation; and so does A after a reload.
    const c = await openTab(srv, "/history.html", "C (opened later)");
    await waitForTexts(c, want);
    await a.page.reload({ waitUntil: "load" });
    await a.page.waitForFunction(() => typeof socket !== "undefined" && socket.connected, null, { timeout: waitMs, polling: pollMs });
    await waitForTexts(a, want);
    await chat([a, b, c], [[c, "six"]], want);
    for (const tab of [a, b, c]) assert.deepEqual(tab.errors, [], `${tab.name}: errors`);
  });
