// The chat with -history, driven by socket.io-client 4.8 the way the
// tutorial's last page drives it ("server delivery" and "client delivery"):
// auth.serverOffset updated from each message's second argument, a client
// offset with every message, retries and ackTimeout. A client gets the
// messages after its serverOffset (the newest -history-last without one)
// before any live one; a retried message is broadcast once; with -recovery
// a recovered client gets what it missed from the recovery, not twice.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { serverTest } from "../lib/server.mjs";
import { MODES, connect, dropTransport, waitForEvent } from "../lib/client.mjs";

// historyFile is a SQLite file in a directory removed when the process exits.
const dir = mkdtempSync(path.join(tmpdir(), "chat-history-test-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const historyFile = () => path.join(dir, `chat-${process.pid}-${files++}.db`);

// tutorialClient connects as the tutorial's last page does: auth.serverOffset
// follows the offsets of the messages received, and send gives every message
// a client offset and waits for its acknowledgement (with retries).
async function tutorialClient(srv, mode, options = {}) {
  const c = await connect(srv, mode, {
    auth: { serverOffset: 0 },
    ackTimeout: 2_000,
    retries: 3,
    ...options,
  });
  c.socket.on("message", (msg, serverOffset) => {
    c.socket.auth.serverOffset = serverOffset;
  });
  let counter = 0;
  c.send = (msg) => c.socket.emitWithAck("user-message", msg, `${c.socket.id}-${counter++}`);
  return c;
}

const offsets = (inbox) => inbox.messages.map((args) => args[1]);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

for (const mode of MODES) {
  serverTest(`[${mode.name}] serverOffset catch-up, last N, and a reconnection that misses nothing`,
    { flags: ["-history", historyFile(), "-history-last", "3"] }, async (t, srv) => {
      const a = await tutorialClient(srv, mode);
      for (let i = 1; i <= 5; i++) await a.send(`m${i}`);
      await a.inbox.waitForCount(5);
      assert.deepEqual(a.inbox.messages, range(1, 5).map((i) => [`m${i}`, i]), "each message carries its offset");

      // A new tab of the tutorial's page (serverOffset 0) gets the whole
      // conversation; the unmodified page (no auth) the newest 3.
      const b = await tutorialClient(srv, mode);
      await b.inbox.waitForCount(5);
      const plain = await connect(srv, mode);
      await plain.inbox.waitForCount(3);
      assert.deepEqual(plain.inbox.first, ["m3", "m4", "m5"]);

      // A leaves, the conversation goes on, A comes back with its offset.
      a.socket.disconnect();
      for (let i = 6; i <= 8; i++) await b.send(`m${i}`);
      await b.inbox.waitForCount(8);
      assert.equal(a.socket.auth.serverOffset, 5);
      a.socket.connect();
      await waitForEvent(a.socket, "connect");
      await a.inbox.waitForCount(8);
      await b.send("m9");
      await Promise.all([a, b, plain].map((c) => c.inbox.waitForCount(c === plain ? 7 : 9)));
      assert.deepEqual(offsets(a.inbox), range(1, 9), "A: every message once, in order, across its reconnection");
      assert.deepEqual(offsets(b.inbox), range(1, 9));
      assert.deepEqual(offsets(plain.inbox), range(3, 9));
    });
}

serverTest("lost acknowledgements: the retries are acknowledged, each message stored and broadcast once",
  { flags: ["-history", historyFile()] }, async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const observer = await connect(srv, mode);
    const sender = await tutorialClient(srv, mode, { ackTimeout: 150, retries: 3 });
    // Every other acknowledgement is lost on its way: the first of each
    // message, so the client sends each message again (same client offset)
    // once its ackTimeout passed.
    const onack = sender.socket.onack;
    let acks = 0;
    sender.socket.onack = function (packet) {
      if (acks++ % 2 === 0) return;
      return onack.call(this, packet);
    };
    const n = 10;
    for (let i = 0; i < n; i++) await sender.send(`r${i}`);
    assert.equal(acks, 2 * n, "two acknowledgements per message: the lost one and the retry's");
    await observer.inbox.waitForCount(n);
    await new Promise((r) => setTimeout(r, 300)); // a duplicate broadcast would have come by now
    assert.deepEqual(observer.inbox.first, range(0, n - 1).map((i) => `r${i}`), "each message once, in order");
    assert.deepEqual(offsets(observer.inbox), range(1, n));
    const retries = srv.records.filter((r) => r.msg === "chat message already stored: acknowledged again");
    assert.equal(retries.length, n, "each retry found its message stored");
    const late = await tutorialClient(srv, mode);
    await late.inbox.waitForCount(n);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(late.inbox.messages.length, n, "stored once each");
  });

serverTest("one-argument handlers are unaffected: the first argument is the message",
  { flags: ["-history", historyFile()] }, async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const c = await connect(srv, mode);
    const got = [];
    c.socket.on("message", (m) => got.push(m));
    for (const m of ["text", 42, { a: [1, null] }, true, null]) c.socket.emit("user-message", m);
    await c.inbox.waitForCount(5);
    assert.deepEqual(got, ["text", 42, { a: [1, null] }, true, null]);
  });

serverTest("with -recovery, a recovered client gets what it missed once, from the recovery",
  { flags: ["-history", historyFile(), "-recovery", "2m"] }, async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const away = await tutorialClient(srv, mode, {
      reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300, randomizationFactor: 0,
    });
    const sender = await tutorialClient(srv, mode);
    await sender.send("before");
    await away.inbox.waitForCount(1);
    assert.equal(away.inbox.messages[0].length, 3, "[message, history offset, recovery offset]");
    const gone = waitForEvent(away.socket, "disconnect");
    dropTransport(away.socket);
    await gone;
    for (let i = 0; i < 5; i++) await sender.send(`missed ${i}`);
    await waitForEvent(away.socket, "connect", 5_000);
    assert.equal(away.socket.recovered, true);
    await sender.send("after");
    await away.inbox.waitForCount(7);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(offsets(away.inbox), range(1, 7), "every message once, in order");
    assert.deepEqual(away.inbox.first, ["before", "missed 0", "missed 1", "missed 2", "missed 3", "missed 4", "after"]);
  });

serverTest("a history that cannot be opened stops the start with a clear message",
  { flags: [] }, async (t, srv) => {
    // The shared helper starts a healthy server; this test starts its own.
    const { spawnSync } = await import("node:child_process");
    const { repoRoot } = await import("../lib/server.mjs");
    const r = spawnSync(path.join(repoRoot, "socketio-chat"), ["-addr", "127.0.0.1:0", "-history", path.join(dir, "no", "such", "dir", "chat.db")],
      { cwd: repoRoot, encoding: "utf8", timeout: 20_000, env: { PATH: process.env.PATH ?? "" } });
    assert.equal(r.status, 1, `exit status, output: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /open history .*chat\.db/);
  });
