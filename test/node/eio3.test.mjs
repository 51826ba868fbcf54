// Engine.IO v3 (socket.io-client 2.x) is refused by default, as in Node, and
// accepted with -allow-eio3. socket.io-client 2.x is not installed, so this
// speaks the EIO=3 polling protocol over raw HTTP: length-prefixed payloads
// ("<length>:<packet>"), the server joining the main namespace by itself.
import assert from "node:assert/strict";
import { serverTest, withDeadline } from "../lib/server.mjs";

const requestDeadlineMs = 5_000;

// decodeEIO3 splits an EIO=3 text payload into its packets.
function decodeEIO3(body) {
  const packets = [];
  let i = 0;
  while (i < body.length) {
    const colon = body.indexOf(":", i);
    assert.ok(colon > i, `EIO=3 payload: no length at ${i} in ${JSON.stringify(body)}`);
    const n = Number(body.slice(i, colon));
    assert.ok(Number.isInteger(n) && n > 0, `EIO=3 payload: bad length in ${JSON.stringify(body)}`);
    packets.push(body.slice(colon + 1, colon + 1 + n));
    i = colon + 1 + n;
  }
  return packets;
}

function encodeEIO3(packets) {
  return packets.map((p) => `${p.length}:${p}`).join("");
}

async function request(url, init = {}) {
  const res = await withDeadline(fetch(url, { ...init, signal: AbortSignal.timeout(requestDeadlineMs) }),
    requestDeadlineMs, `${init.method ?? "GET"} ${url}`);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

serverTest("without -allow-eio3 an EIO=3 handshake gets 400 Unsupported protocol version", {}, async (t, srv) => {
  const res = await request(`${srv.url}/socket.io/?EIO=3&transport=polling`);
  assert.equal(res.status, 400, res.body);
  assert.deepEqual(JSON.parse(res.body), { code: 5, message: "Unsupported protocol version" }, "Node's error body");

  const v4 = await request(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(v4.status, 200, "an EIO=4 handshake on the same server works");
  assert.match(v4.body, /^0\{/);
});

serverTest("with -allow-eio3 an EIO=3 polling client connects and chats", { flags: ["-allow-eio3"] }, async (t, srv) => {
  const base = `${srv.url}/socket.io/?EIO=3&transport=polling`;
  const hs = await request(base);
  assert.equal(hs.status, 200, hs.body);
  const packets = decodeEIO3(hs.body);
  assert.equal(packets[0][0], "0", `an OPEN packet first: ${hs.body}`);
  const open = JSON.parse(packets[0].slice(1));
  assert.equal(typeof open.sid, "string");
  assert.equal(open.pingInterval, 25_000);
  assert.equal(open.pingTimeout, 20_000);
  assert.deepEqual(open.upgrades, ["websocket"]);
  const poll = `${base}&sid=${encodeURIComponent(open.sid)}`;

  // The server joins EIO=3 clients to "/" by itself: "40" comes with the
  // handshake or on the next poll.
  let received = packets.slice(1);
  const deadline = Date.now() + requestDeadlineMs;
  while (!received.includes("40")) {
    assert.ok(Date.now() < deadline, `no CONNECT (40) packet, got ${JSON.stringify(received)}`);
    const res = await request(poll);
    assert.equal(res.status, 200, res.body);
    received = received.concat(decodeEIO3(res.body));
  }
  // A v2 client's socket id is its Engine.IO id, as in Node.
  await srv.waitForLog((r) => r.msg === "A new user has connected" && r.id === open.sid, requestDeadlineMs,
    `"A new user has connected" with id ${open.sid}`);

  const sent = await request(poll, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8" },
    body: encodeEIO3(['42["user-message","hello from EIO=3"]']),
  });
  assert.equal(sent.status, 200, sent.body);
  assert.equal(sent.body, "ok");

  const events = [];
  while (events.length === 0) {
    assert.ok(Date.now() < deadline, "no message event came back");
    const res = await request(poll);
    assert.equal(res.status, 200, res.body);
    for (const p of decodeEIO3(res.body)) if (p.startsWith("42")) events.push(JSON.parse(p.slice(2)));
  }
  assert.deepEqual(events, [["message", "hello from EIO=3"]]);

  const closed = await request(poll, { method: "POST", headers: { "content-type": "text/plain;charset=UTF-8" }, body: encodeEIO3(["1"]) });
  assert.equal(closed.status, 200, closed.body);
  await srv.waitForLog((r) => r.id === open.sid && "reason" in r, requestDeadlineMs, `the disconnect of ${open.sid}`);
});
