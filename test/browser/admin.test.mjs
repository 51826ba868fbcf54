// The Socket.IO Admin UI (@socket.io/admin-ui 0.5.1, its own files served by
// the Go server at /admin/ with -admin-ui) in Debian's chromium, driven by
// playwright-core: it logs in (a wrong password is refused), lists the
// connected tutorial pages with their transports, and disconnects one of
// them, whose client then sees "io server disconnect"; in read-only mode it
// offers no operation. The UI also runs from another origin, as from
// https://admin.socket.io, with -cors-origin.
//
// Every request to a host other than the loopback is aborted: the UI loads
// Google's fonts and a CDN stylesheet (its icons then show blank).
//
// ADMIN_UI_SCREENSHOT=path saves a screenshot of the Sockets page (the
// README's docs/img/admin-ui.png comes from such a run).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";
import { repoRoot, serverTest, startServer } from "../lib/server.mjs";
import test from "node:test";

const chromiumPath = "/usr/bin/chromium";
const chromiumFlags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];
const waitMs = 10_000;
const pollMs = 20;
const uiDir = path.join(repoRoot, "node_modules/@socket.io/admin-ui/ui/dist");

// A bcrypt hash (cost 4, for speed) of the password "changeit".
const password = "changeit";
const hash = "$2a$04$l1O3yjhrXnit8Vi0GatawuK6qujKRjMlSKoo.w2p1.NClFq3xt/Fy";
const adminFlags = ["-admin-ui", "-admin-user", "admin", "-admin-password-hash", hash];

let browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup.sh --test (apt-get install -y chromium)`);
  assert.ok(existsSync(path.join(uiDir, "index.html")), `${uiDir} is missing: run npm ci`);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
});

// loopbackOnly aborts every request of the context to another host.
async function loopbackOnly(context) {
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === "127.0.0.1" || host === "localhost" ? route.continue() : route.abort();
  });
}

// forceTransports is an init script (as in chat.test.mjs): io(...) of the
// tutorial page uses only the given transports.
function forceTransports(transports) {
  Object.defineProperty(window, "io", {
    configurable: true,
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

// openChat opens the tutorial page on one transport and waits until its
// socket is connected; it records the reasons of its disconnections.
async function openChat(srv, transport) {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  srv.defer(() => context.close());
  await context.addInitScript(forceTransports, [transport]);
  const page = await context.newPage();
  await page.goto(`${srv.url}/`, { waitUntil: "load", timeout: waitMs });
  await page.waitForFunction(() => typeof socket !== "undefined" && socket.connected, null, { timeout: waitMs, polling: pollMs });
  return page.evaluate(() => {
    window.__reasons = [];
    socket.on("disconnect", (reason) => window.__reasons.push(reason));
    return socket.id;
  }).then((id) => ({ page, id, transport }));
}

// openAdmin opens the Admin UI at uiURL and logs in to the server at
// serverURL. It returns the page, with the dialog's error text if any.
async function openAdmin(srv, uiURL, serverURL, pass) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  srv.defer(() => context.close());
  await loopbackOnly(context);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(uiURL, { waitUntil: "load", timeout: waitMs });
  await page.getByLabel("Server URL").fill(serverURL);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Connect" }).click();
  return { page, errors };
}

// waitForSockets goes to the Sockets page and waits for the rows of the
// namespace "/" to be exactly the ids given; it returns the rows' texts.
async function waitForSockets(page, uiURL, ids) {
  await page.goto(`${uiURL}#/sockets/`);
  try {
    await page.waitForFunction((want) => {
      const rows = [...document.querySelectorAll("table tbody tr")].map((r) => r.innerText);
      return rows.length === want.length && want.every((id) => rows.some((r) => r.includes(id)));
    }, ids, { timeout: waitMs, polling: pollMs });
  } catch (err) {
    const rows = await page.locator("table tbody tr").allInnerTexts();
    throw new Error(`Sockets page shows ${JSON.stringify(rows)}, want ${JSON.stringify(ids)}: ${err.message}`);
  }
  return page.locator("table tbody tr").allInnerTexts();
}

serverTest("the Admin UI at /admin/ lists the chat's clients and disconnects one; a wrong password is refused",
  { flags: adminFlags, timeout: 90_000 }, async (t, srv) => {
    const ws = await openChat(srv, "websocket");
    const polling = await openChat(srv, "polling");
    const uiURL = `${srv.url}/admin/`;

    const bad = await openAdmin(srv, uiURL, srv.url, "not the password");
    await bad.page.locator(".red--text", { hasText: "Invalid credentials" }).waitFor({ timeout: waitMs });
    await srv.waitForLog((r) => r.msg === "admin UI login refused" && r.reason === "invalid credentials", waitMs, "the refused login");

    const { page, errors } = await openAdmin(srv, uiURL, srv.url, password);
    await page.getByText("Connected", { exact: false }).first().waitFor({ timeout: waitMs });
    const rows = await waitForSockets(page, uiURL, [ws.id, polling.id]);
    const row = (id) => rows.find((r) => r.includes(id));
    assert.match(row(ws.id), /WebSocket/, "the WebSocket page's transport");
    assert.match(row(polling.id), /HTTP long-polling/, "the polling page's transport");
    assert.match(row(ws.id), /127\.0\.0\.1/, "its address");

    // The dashboard counts the clients by transport: the WebSocket page and
    // the UI itself, the polling page (server_stats, every 2 s).
    await page.goto(`${uiURL}#/`);
    try {
      await page.waitForFunction(() => {
        const count = (label) => [...document.querySelectorAll("tr")]
          .find((tr) => tr.querySelector("td")?.innerText.trim() === label)?.querySelector("h2")?.innerText;
        return count("WebSocket") === "2" && count("HTTP long-polling") === "1";
      }, null, { timeout: waitMs, polling: pollMs });
    } catch (err) {
      throw new Error(`dashboard: ${await page.locator("body").innerText()}: ${err.message}`);
    }

    await waitForSockets(page, uiURL, [ws.id, polling.id]);
    if (process.env.ADMIN_UI_SCREENSHOT) await page.screenshot({ path: process.env.ADMIN_UI_SCREENSHOT });

    // Disconnect the polling page from its row.
    await page.locator("table tbody tr", { hasText: polling.id }).locator("button:has(i.mdi-logout)").click();
    await polling.page.waitForFunction(() => window.__reasons.length > 0, null, { timeout: waitMs, polling: pollMs });
    assert.deepEqual(await polling.page.evaluate(() => window.__reasons), ["io server disconnect"]);
    await waitForSockets(page, uiURL, [ws.id]);
    await srv.waitForLog((r) => r.msg === "admin UI operation" && r.op === "disconnect" && r.filter === polling.id, waitMs, "the operation's log line");
    assert.deepEqual(await ws.page.evaluate(() => window.__reasons), [], "the other page stays connected");
    assert.deepEqual(errors, [], "page errors");
  });

serverTest("in read-only mode the Admin UI offers no operation",
  { flags: [...adminFlags, "-admin-readonly"], timeout: 60_000 }, async (t, srv) => {
    const ws = await openChat(srv, "websocket");
    const uiURL = `${srv.url}/admin/`;
    const { page } = await openAdmin(srv, uiURL, srv.url, password);
    await waitForSockets(page, uiURL, [ws.id]);
    assert.equal(await page.locator("table tbody tr i.mdi-logout").count(), 0, "no disconnect button");
    // Nor on the Clients page (a client is an Engine.IO session, shown by the
    // first 12 characters of its id).
    const clientId = (await ws.page.evaluate(() => socket.io.engine.id)).slice(0, 12);
    await page.goto(`${uiURL}#/clients/`);
    await page.locator("table tbody tr", { hasText: clientId }).waitFor({ timeout: waitMs });
    assert.equal(await page.locator("table tbody tr i.mdi-logout").count(), 0, "no client disconnect button");
  });

// serveUI serves the UI's files at /admin/ on another origin, as
// https://admin.socket.io does.
async function serveUI() {
  const types = { ".html": "text/html", ".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".map": "application/json" };
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, "http://x").pathname.replace(/^\/admin\//, "") || "index.html";
    const file = path.join(uiDir, path.normalize(p));
    if (!file.startsWith(uiDir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": types[path.extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

test("the Admin UI works from another origin (as https://admin.socket.io) with -cors-origin", { timeout: 60_000 }, async (t) => {
  const ui = await serveUI();
  t.after(() => new Promise((resolve) => ui.close(resolve)));
  const origin = `http://localhost:${ui.address().port}`;
  const srv = await startServer(t, [...adminFlags, "-cors-origin", origin]);
  const ws = await openChat(srv, "websocket");
  const uiURL = `${origin}/admin/`;
  const { page } = await openAdmin(srv, uiURL, srv.url, password);
  await waitForSockets(page, uiURL, [ws.id]);
});
