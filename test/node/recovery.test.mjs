// Connection state recovery (-recovery 2m), the tutorial's step 6: a client
// whose connection drops for a moment reconnects by itself and gets the
// broadcasts it missed, in order, exactly once, with socket.recovered true.
// Without the flag a reconnection is a new session and nothing is replayed.
import assert from "node:assert/strict";
import { serverTest } from "../lib/server.mjs";
import { MODES, connect, dropTransport, transportName, waitForEvent, waitForUpgrade } from "../lib/client.mjs";

// The dropped client waits this long before reconnecting, time enough for
// the other client's messages to be broadcast while it is away.
const reconnectDelayMs = 600;
const reconnecting = {
  reconnection: true,
  reconnectionDelay: reconnectDelayMs,
  reconnectionDelayMax: reconnectDelayMs,
  randomizationFactor: 0,
};
const missedCount = 20;
const connectedMsg = "A new user has connected";

for (const mode of MODES) {
  serverTest(`[${mode.name}] with -recovery 2m a dropped client gets the missed messages once, in order`,
    { flags: ["-recovery", "2m"] }, async (t, srv) => {
      const away = await connect(srv, mode, reconnecting);
      const sender = await connect(srv, mode);
      if (mode.name === "upgrade") await Promise.all([waitForUpgrade(away.socket), waitForUpgrade(sender.socket)]);
      assert.equal(away.socket.recovered, false, "a first connection is not recovered");
      const id = away.socket.id;

      // The client needs one message (and its offset) before recovery can work.
      sender.socket.emit("user-message", "before");
      await away.inbox.waitForCount(1);
      const [first] = away.inbox.messages;
      assert.equal(first[0], "before");
      assert.equal(first.length, 2, `with recovery a broadcast carries its offset as a 2nd argument: ${JSON.stringify(first)}`);
      assert.equal(typeof first[1], "string");

      const disconnected = waitForEvent(away.socket, "disconnect");
      dropTransport(away.socket);
      await disconnected;
      const lost = await srv.waitForLog((r) => r.id === id && "reason" in r, 5_000, `the disconnect of ${id}`);
      assert.equal(lost.reason, "transport close");

      // Broadcast while the client is away: text, a number and an object.
      const missed = Array.from({ length: missedCount }, (_, i) => `missed ${i}`);
      missed[5] = 5;
      missed[10] = { n: 10, nested: [true, null] };
      for (const m of missed) sender.socket.emit("user-message", m);
      await sender.inbox.waitForCount(1 + missedCount);
      assert.equal(away.socket.connected, false, "the messages were broadcast while the client was away");

      const reconnected = await waitForEvent(away.socket, "connect", reconnectDelayMs + 5_000).then(() => true);
      assert.ok(reconnected);
      assert.equal(away.socket.recovered, true, "socket.recovered after the reconnection");
      assert.equal(away.socket.id, id, "a recovered socket keeps its id");
      const rec = await srv.waitForLog((r) => r.msg === connectedMsg && r.id === id && r.recovered === true, 5_000,
        `"${connectedMsg}" for ${id} with recovered=true`);
      assert.equal(rec.recovered, true);

      sender.socket.emit("user-message", "after");
      const want = ["before", ...missed, "after"];
      await Promise.all([away.inbox.waitForCount(want.length), sender.inbox.waitForCount(want.length)]);
      assert.deepStrictEqual(sender.inbox.first, want, "the sender, always connected, got every message");
      assert.deepStrictEqual(away.inbox.first, want, "missed messages replayed once, in order, then live ones");
      const offsets = away.inbox.messages.map((args) => args[1]);
      assert.equal(new Set(offsets).size, offsets.length, "every message has its own offset");
      if (mode.name === "upgrade") await waitForUpgrade(away.socket);
      assert.equal(transportName(away.socket), mode.final);
    });
}

serverTest("[websocket] without -recovery a reconnection is a new session and nothing is replayed", {}, async (t, srv) => {
  const mode = MODES.find((m) => m.name === "websocket");
  const away = await connect(srv, mode, reconnecting);
  const sender = await connect(srv, mode);
  const id = away.socket.id;
  sender.socket.emit("user-message", "before");
  await away.inbox.waitForCount(1);
  assert.deepEqual(away.inbox.messages, [["before"]], "without recovery a message has exactly one argument");

  const disconnected = waitForEvent(away.socket, "disconnect");
  dropTransport(away.socket);
  await disconnected;
  sender.socket.emit("user-message", "missed");
  await sender.inbox.waitForCount(2);
  assert.equal(away.socket.connected, false);

  await waitForEvent(away.socket, "connect", reconnectDelayMs + 5_000);
  assert.ok(!away.socket.recovered, `socket.recovered is ${away.socket.recovered}`);
  assert.notEqual(away.socket.id, id, "a new session has a new id");
  sender.socket.emit("user-message", "after");
  await away.inbox.waitForCount(2);
  assert.deepEqual(away.inbox.messages, [["before"], ["after"]]);
});

// Regression: the library's session-aware adapter keeps the packet it
// broadcast for replay, and encoding it for the live clients used to drain
// the binary attachment (a *types.BytesBuffer read as an io.Reader), so the
// replay carried an empty attachment. broadcast.go now detaches the bytes.
serverTest("[websocket] with -recovery 2m a binary message broadcast while away is replayed intact",
  {
    flags: ["-recovery", "2m"],
  },
  async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const away = await connect(srv, mode, reconnecting);
    const sender = await connect(srv, mode);
    sender.socket.emit("user-message", "before");
    await away.inbox.waitForCount(1);

    const disconnected = waitForEvent(away.socket, "disconnect");
    dropTransport(away.socket);
    await disconnected;
    const blob = Buffer.from([1, 2, 3, 0, 255]);
    sender.socket.emit("user-message", blob);
    sender.socket.emit("user-message", { caption: "nested", data: blob });
    await sender.inbox.waitForCount(3);
    assert.deepStrictEqual(sender.inbox.first.slice(1), [blob, { caption: "nested", data: blob }], "live delivery");
    assert.equal(away.socket.connected, false);

    await waitForEvent(away.socket, "connect", reconnectDelayMs + 5_000);
    assert.equal(away.socket.recovered, true);
    await away.inbox.waitForCount(3);
    assert.deepStrictEqual(away.inbox.first, ["before", blob, { caption: "nested", data: blob }], "replayed binary");
  });
