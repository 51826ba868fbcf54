// socket.io-client 4.8 with socket.io-msgpack-parser 3.0.2 (the parser of
// the socket.io.msgpack.min.js bundle): with -parser msgpack it chats over
// every transport mode; with -parser auto it chats beside JSON clients, in
// the same chat, each getting every message in its own format; with
// -recovery a dropped msgpack client gets what it missed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { io } from "socket.io-client";
import { serverTest, startServer } from "../lib/server.mjs";
import { MODES, connect, dropTransport, waitForEvent, waitForUpgrade } from "../lib/client.mjs";

const require = createRequire(import.meta.url);
const msgpackParser = require("socket.io-msgpack-parser");
const msgpack = { parser: msgpackParser };

// Every payload type; want is what arrives (default: what was sent).
const cases = [
  { name: "string", sent: "héllo — 你好 🎉" },
  { name: "long string", sent: "x".repeat(60_000) },
  { name: "integer", sent: 42 },
  { name: "negative", sent: -129 },
  { name: "fraction", sent: 3.141592653589793 },
  { name: "2^53 - 1", sent: Number.MAX_SAFE_INTEGER },
  { name: "true", sent: true },
  { name: "false", sent: false },
  { name: "null", sent: null },
  { name: "object", sent: { user: "ana", text: "hi", n: 1, ok: true, none: null, "clé": "v" } },
  { name: "array", sent: ["a", 1, 2.5, true, null, {}, []] },
  { name: "nested", sent: { a: { b: [1, [2, { c: "deep" }]] }, list: [{ x: 1 }] } },
  { name: "Buffer", sent: Buffer.from([0, 1, 2, 127, 128, 255]) },
  { name: "binary in an object", sent: { name: "f.bin", data: Buffer.from([9, 8, 7]) } },
  { name: "binary in an array", sent: [Buffer.from([1]), "s", Buffer.from([2, 3])] },
];

const dir = mkdtempSync(path.join(tmpdir(), "chat-msgpack-test-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

// received normalizes what a client got for comparison: Buffers and
// ArrayBuffers (JSON clients in Node get Buffers) as Buffers.
function normalize(v) {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

for (const mode of MODES) {
  serverTest(`[${mode.name}] -parser msgpack: a msgpack client sends and receives every payload type`,
    { flags: ["-parser", "msgpack"] }, async (t, srv) => {
      const a = await connect(srv, mode, msgpack);
      const b = await connect(srv, mode, msgpack);
      if (mode.name === "upgrade") await Promise.all([waitForUpgrade(a.socket), waitForUpgrade(b.socket)]);
      for (const c of cases) a.socket.emit("user-message", c.sent);
      await Promise.all([a.inbox.waitForCount(cases.length), b.inbox.waitForCount(cases.length)]);
      for (const [i, c] of cases.entries()) {
        assert.deepStrictEqual(normalize(b.inbox.messages[i][0]), normalize(c.sent), c.name);
        assert.deepStrictEqual(normalize(a.inbox.messages[i][0]), normalize(c.sent), `${c.name} (echo)`);
      }
    });

  serverTest(`[${mode.name}] -parser auto: msgpack and JSON clients chat together`,
    { flags: ["-parser", "auto"] }, async (t, srv) => {
      const mp = await connect(srv, mode, msgpack);
      const js = await connect(srv, mode);
      if (mode.name === "upgrade") await Promise.all([waitForUpgrade(mp.socket), waitForUpgrade(js.socket)]);
      for (const c of cases) mp.socket.emit("user-message", c.sent);
      for (const c of cases) js.socket.emit("user-message", c.sent);
      const n = 2 * cases.length;
      await Promise.all([mp.inbox.waitForCount(n), js.inbox.waitForCount(n)]);
      for (const inbox of [mp.inbox, js.inbox]) {
        const got = inbox.messages.map((args) => normalize(args[0]));
        const want = cases.map((c) => normalize(c.sent));
        assert.deepStrictEqual(sortJSON(got), sortJSON([...want, ...want]), "every message of both senders, unchanged");
      }
    });
}

function sortJSON(list) {
  return list.map((v) => JSON.stringify(v, (k, x) => (x && x.type === "Buffer" && Array.isArray(x.data) ? `bin:${x.data}` : x))).sort();
}

serverTest("-parser msgpack: a JSON client is refused, costing only itself", { flags: ["-parser", "msgpack"] }, async (t, srv) => {
  const mp = await connect(srv, MODES[1], msgpack);
  await assert.rejects(connect(srv, MODES[1], { timeout: 2_000 }), /connect_error|timed out/);
  const refused = await srv.waitForLog((r) => r.msg === "refused packet", 5_000, "the refused JSON packet");
  assert.match(refused.reason, /text message from a msgpack client/);
  mp.socket.emit("user-message", "still here");
  await mp.inbox.waitForCount(1);
  assert.deepStrictEqual(mp.inbox.first, ["still here"]);
});

// Recovery: the missed broadcasts, logged once, reach a msgpack client in
// msgpack, and a JSON client beside it in JSON.
const reconnecting = { reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 500, randomizationFactor: 0 };
for (const mode of MODES) {
  serverTest(`[${mode.name}] -parser auto -recovery 2m: a dropped msgpack client gets the missed messages once, in order`,
    { flags: ["-parser", "auto", "-recovery", "2m"] }, async (t, srv) => {
      const away = await connect(srv, mode, { ...msgpack, ...reconnecting });
      const sender = await connect(srv, mode);
      if (mode.name === "upgrade") await Promise.all([waitForUpgrade(away.socket), waitForUpgrade(sender.socket)]);
      const id = away.socket.id;
      sender.socket.emit("user-message", "before");
      await away.inbox.waitForCount(1);
      assert.equal(away.inbox.messages[0].length, 2, "a broadcast carries its offset");

      const disconnected = waitForEvent(away.socket, "disconnect");
      dropTransport(away.socket);
      await disconnected;
      await srv.waitForLog((r) => r.id === id && "reason" in r, 5_000, `the disconnect of ${id}`);

      const missed = ["m0", 1, { n: 2, b: Buffer.from([2]) }, [3, null], Buffer.from([4, 4])];
      for (const m of missed) sender.socket.emit("user-message", m);
      await sender.inbox.waitForCount(1 + missed.length);
      assert.equal(away.socket.connected, false, "the messages were broadcast while the client was away");

      await waitForEvent(away.socket, "connect", 6_000);
      assert.equal(away.socket.recovered, true, "socket.recovered");
      assert.equal(away.socket.id, id);
      sender.socket.emit("user-message", "after");
      const want = ["before", ...missed, "after"].map(normalize);
      await Promise.all([away.inbox.waitForCount(want.length), sender.inbox.waitForCount(want.length)]);
      assert.deepStrictEqual(away.inbox.first.map(normalize), want, "missed messages once, in order, then live ones");
      assert.deepStrictEqual(sender.inbox.first.map(normalize), want);
    });
}

// History: what JSON clients said is stored (as JSON) and a msgpack client
// that connects later gets it, binary included, in msgpack, with offsets.
serverTest("-parser auto -history: a msgpack client gets the stored conversation",
  { flags: ["-parser", "auto", "-history", path.join(dir, "history.db"), "-history-last", "10"] }, async (t, srv) => {
    const js = await connect(srv, MODES[1]);
    const said = ["one", { n: 2, b: Buffer.from([2, 2]) }, Buffer.from([3])];
    for (const m of said) js.socket.emit("user-message", m);
    await js.inbox.waitForCount(said.length);
    const mp = await connect(srv, MODES[0], msgpack);
    await mp.inbox.waitForCount(said.length);
    assert.deepStrictEqual(mp.inbox.first.map(normalize), said.map(normalize), "the stored conversation");
    assert.deepStrictEqual(mp.inbox.messages.map((m) => m[1]), js.inbox.messages.map((m) => m[1]), "with the same offsets");
    mp.socket.emit("user-message", "live from msgpack");
    await js.inbox.waitForCount(said.length + 1);
    assert.equal(js.inbox.messages.at(-1)[0], "live from msgpack");
  });

// Redis: a msgpack client on one node and a JSON client on another chat
// (the adapter carries JSON-transcoded arguments, as between Node nodes).
test("-parser auto -redis: msgpack and JSON clients on two nodes chat", { timeout: 30_000 }, async (t) => {
  const prefix = `msgpack-test-${process.pid}-${Date.now()}`;
  const flags = ["-parser", "auto", "-redis", "redis://127.0.0.1:6379/0", "-redis-prefix", prefix];
  const a = await startServer(t, flags);
  const b = await startServer(t, flags);
  const mp = await connect(a, MODES[1], msgpack);
  const js = await connect(b, MODES[2]);
  await waitForUpgrade(js.socket);
  // The nodes' subscriptions are up once a message goes across: ping
  // until one does (each ping waited for with a deadline).
  const deadline = Date.now() + 10_000;
  for (let i = 0; ; i++) {
    mp.socket.emit("user-message", `ping ${i}`);
    try {
      await js.inbox.waitForCount(1, 500);
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
  const isPing = (m) => typeof m === "string" && m.startsWith("ping ");
  const chat = (inbox) => inbox.first.filter((m) => !isPing(m));
  const sent = [{ text: "hi", n: 1.5, bin: Buffer.from([1, 2]) }, Buffer.from([9]), "from msgpack"];
  for (const m of sent) mp.socket.emit("user-message", m);
  js.socket.emit("user-message", { from: "json", bytes: Buffer.from([7]) });
  const want = sortJSON([...sent, { from: "json", bytes: Buffer.from([7]) }].map(normalize));
  for (const [name, inbox] of [["msgpack client", mp.inbox], ["json client", js.inbox]]) {
    await inbox.waitUntil((b) => chat(b).length >= 4, 5_000, `4 messages on the ${name}`);
    assert.deepStrictEqual(sortJSON(chat(inbox).map(normalize)), want, name);
  }
});

// The Admin UI (a JSON client of /admin) sees msgpack clients among the
// others, with their transport, and its operations reach them: a
// msgpack client it disconnects hears "io server disconnect".
serverTest("-parser auto: the Admin UI lists and disconnects msgpack clients",
  { flags: ["-parser", "auto", "-admin-ui", "-admin-no-auth"] }, async (t, srv) => {
    const mp = await connect(srv, MODES[0], msgpack);
    // Listening before the CONNECT answer: all_sockets may come with it.
    const adminSocket = io(`${srv.url}/admin`, { forceNew: true, reconnection: false, transports: ["websocket"] });
    srv.defer(() => adminSocket.disconnect());
    const admin = { socket: adminSocket };
    const [all] = await waitForEvent(admin.socket, "all_sockets");
    const listed = all.find((s) => s.id === mp.socket.id);
    assert.ok(listed, `the msgpack client ${mp.socket.id} is listed: ${JSON.stringify(all.map((s) => s.id))}`);
    assert.equal(listed.nsp, "/");
    const connected = waitForEvent(admin.socket, "socket_connected");
    const mp2 = await connect(srv, MODES[0], msgpack);
    const [sock] = await connected;
    assert.equal(sock.id, mp2.socket.id, "socket_connected names the new msgpack client");
    const gone = waitForEvent(mp.socket, "disconnect");
    admin.socket.emit("_disconnect", "/", false, mp.socket.id);
    const [reason] = await gone;
    assert.equal(reason, "io server disconnect");
  });
