// WebSocket compression (permessage-deflate) with socket.io-client 4.8,
// whose WebSocket (Node's ws) offers "permessage-deflate;
// client_max_window_bits" by default and compresses the messages of 1024
// bytes or more. With -ws-compression the server accepts the offer (always
// with no context takeover on both sides) and messages flow compressed both
// ways; without it (the default, as in Node) nothing is negotiated.
import assert from "node:assert/strict";
import { serverTest, withDeadline } from "../lib/server.mjs";
import { MODES, connectMany, waitForUpgrade } from "../lib/client.mjs";

const negotiated = "websocket compression negotiated";

// deflateParams is what the client's ws negotiated: null when no
// permessage-deflate, else its parameters.
function deflateParams(socket) {
  const ws = socket.io.engine.transport.ws;
  assert.ok(ws, "the client runs on a ws WebSocket");
  const ext = ws._extensions?.["permessage-deflate"];
  return ext ? { ...ext.params } : null;
}

// scrape reads the server's Prometheus counters named name (a map from the
// line's labels to its value).
async function scrape(url, name) {
  const text = await (await fetch(url)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(\w+)(\{[^}]*\})? (\S+)$/);
    if (m && m[1] === name) out[m[2] ?? ""] = Number(m[3]);
  }
  return out;
}

for (const mode of MODES.filter((m) => m.final === "websocket")) {
  serverTest(`[${mode.name}] -ws-compression: socket.io-client negotiates permessage-deflate and chats both ways`,
    { flags: ["-ws-compression", "-metrics-addr", "127.0.0.1:0"] }, async (t, srv) => {
      const [sender, other] = await connectMany(srv, mode, 2);
      await Promise.all([waitForUpgrade(sender.socket), waitForUpgrade(other.socket)]);
      for (const c of [sender, other]) {
        assert.deepEqual(deflateParams(c.socket), { server_no_context_takeover: true, client_no_context_takeover: true },
          "the extension the client negotiated");
        const sid = c.socket.io.engine.id;
        await srv.waitForLog((r) => r.msg === negotiated && r.sid === sid, 5_000, `"${negotiated}" for ${sid}`);
      }

      // Above ws's threshold (1024 bytes) the client compresses; above the
      // server's (1024) so does the server. A short message goes as it is.
      const big = "compress me, ".repeat(500);
      const obj = { text: "hello", list: Array.from({ length: 200 }, (_, i) => ({ i, name: `user ${i}` })) };
      sender.socket.emit("user-message", big);
      sender.socket.emit("user-message", "short");
      sender.socket.emit("user-message", obj);
      await Promise.all([sender.inbox.waitForCount(3), other.inbox.waitForCount(3)]);
      for (const c of [sender, other]) {
        assert.deepEqual(c.inbox.first, [big, "short", obj]);
      }

      // The server sent the two long messages compressed to both clients.
      const listening = await srv.waitForLog((r) => r.msg === "metrics listening", 5_000, '"metrics listening"');
      const addr = listening.addr;
      const msgs = await scrape(`http://${addr}/metrics`, "engineio_ws_deflated_messages_total");
      assert.equal(msgs[""], 4, "messages sent compressed: 2 long ones × 2 clients");
      const bytes = await scrape(`http://${addr}/metrics`, "engineio_ws_deflated_bytes_total");
      assert.ok(bytes['{of="wire"}'] * 4 < bytes['{of="payload"}'],
        `compressed to ${bytes['{of="wire"}']} bytes from ${bytes['{of="payload"}']}`);
      const conns = await scrape(`http://${addr}/metrics`, "engineio_ws_deflate_negotiated_total");
      assert.ok(conns[""] >= 2, "connections that negotiated compression");
    });
}

serverTest("[websocket] without -ws-compression (the default, as in Node) nothing is negotiated", {}, async (t, srv) => {
  const mode = MODES.find((m) => m.name === "websocket");
  const [c] = await connectMany(srv, mode, 1);
  assert.equal(deflateParams(c.socket), null);
  const big = "x".repeat(5000);
  c.socket.emit("user-message", big);
  await withDeadline(c.inbox.waitForCount(1), 5_000, "the echo");
  assert.deepEqual(c.inbox.first, [big]);
  assert.ok(!srv.records.some((r) => r.msg === negotiated), "no compression negotiated");
});
