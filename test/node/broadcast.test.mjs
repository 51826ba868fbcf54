// Broadcast on each transport mode: a user-message reaches every client,
// sender included, as one "message" event with one argument; a burst from
// many clients at once reaches every client exactly once, in per-sender order.
import assert from "node:assert/strict";
import { serverTest } from "../lib/server.mjs";
import { MODES, connect, connectMany, transportName, waitForUpgrade } from "../lib/client.mjs";

const burstClients = 10;
const burstMessages = 50; // per client; the server's default -event-burst is 100

for (const mode of MODES) {
  serverTest(`[${mode.name}] a message reaches every client, sender included, with one argument`, {}, async (t, srv) => {
    const clients = await connectMany(srv, mode, 3);
    for (const [i, { socket }] of clients.entries()) {
      socket.emit("user-message", `hello from ${i}`);
      await Promise.all(clients.map(({ inbox }) => inbox.waitForCount(i + 1)));
    }
    const want = clients.map((_, i) => `hello from ${i}`);
    for (const [i, { inbox }] of clients.entries()) {
      assert.deepEqual(inbox.first, want, `client ${i} got every message in order`);
      for (const args of inbox.messages) {
        assert.equal(args.length, 1, `without -recovery a message has exactly one argument, got ${JSON.stringify(args)}`);
      }
    }
  });

  serverTest(`[${mode.name}] only the first argument of user-message is forwarded; none forwards null`, {}, async (t, srv) => {
    const [a, b] = await connectMany(srv, mode, 2);
    a.socket.emit("user-message", "first", "second", 3);
    a.socket.emit("user-message");
    await Promise.all([a.inbox.waitForCount(2), b.inbox.waitForCount(2)]);
    for (const { inbox } of [a, b]) {
      assert.deepEqual(inbox.messages, [["first"], [null]]);
    }
  });

  serverTest(`[${mode.name}] ${burstClients} clients × ${burstMessages} messages at once: all delivered once, in per-sender order`,
    {}, async (t, srv) => {
      const clients = await connectMany(srv, mode, burstClients);
      const total = burstClients * burstMessages;
      // Every client sends all its messages in one go, without waiting.
      for (const [c, { socket }] of clients.entries()) {
        for (let i = 0; i < burstMessages; i++) socket.emit("user-message", `${c}:${i}`);
      }
      await Promise.all(clients.map(({ inbox }) => inbox.waitForCount(total, 20_000)));

      for (const [r, { inbox }] of clients.entries()) {
        const got = inbox.first;
        assert.equal(got.length, total, `client ${r} message count`);
        assert.equal(new Set(got).size, total, `client ${r} got duplicates`);
        const next = new Array(burstClients).fill(0);
        for (const m of got) {
          const [c, i] = m.split(":").map(Number);
          assert.equal(i, next[c], `client ${r}: from sender ${c} got #${i}, want #${next[c]} (per-sender order)`);
          next[c]++;
        }
        assert.deepEqual(next, new Array(burstClients).fill(burstMessages), `client ${r} got every sender's messages`);
      }
      if (mode.name === "upgrade") {
        await Promise.all(clients.map(({ socket }) => waitForUpgrade(socket)));
      }
      for (const { socket } of clients) assert.equal(transportName(socket), mode.final);
      // Nothing more arrives: each message was delivered exactly once.
      const probe = await connect(srv, mode);
      probe.socket.emit("user-message", "end");
      await Promise.all(clients.map(({ inbox }) => inbox.waitForCount(total + 1)));
      for (const { inbox } of clients) {
        assert.equal(inbox.messages.length, total + 1);
        assert.equal(inbox.first.at(-1), "end");
      }
    });
}
