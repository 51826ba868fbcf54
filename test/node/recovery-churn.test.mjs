// Connection state recovery under churn (-recovery 2m): while one client
// sends 40 messages a second, the transports of other clients are killed
// every 2 s, half closed by the client's engine, half by destroying the TCP
// connection; each reconnects by itself and recovers its session. At the
// end every client has every message exactly once, in order: nothing is
// lost or repeated at the seam between the replay of what it missed and the
// live broadcasts, on any transport.
import assert from "node:assert/strict";
import { serverTest, withDeadline } from "../lib/server.mjs";
import { MODES, connect, dropTransport } from "../lib/client.mjs";

const clientCount = 150;
const sendRate = 40; // messages a second
const sendMs = 25_000;
const killEveryMs = 2_000;
const killsPerRound = 15;
const reconnecting = {
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0.5,
};

serverTest(`${clientCount} clients keep every message exactly once, in order, while their transports are killed`,
  { flags: ["-recovery", "2m", "-log-level", "info"], timeout: 60_000 }, async (t, srv) => {
    const clients = [];
    for (let i = 0; i < clientCount; i += 25) {
      const batch = Array.from({ length: Math.min(25, clientCount - i) }, (_, k) => {
        const mode = MODES[(i + k) % MODES.length];
        return connect(srv, mode, reconnecting).then((c) => ({ ...c, mode: mode.name }));
      });
      clients.push(...(await Promise.all(batch)));
    }
    const sender = await connect(srv, MODES.find((m) => m.name === "websocket"));

    // One sender at a steady 40 messages a second.
    const total = Math.round((sendMs / 1000) * sendRate);
    const want = Array.from({ length: total }, (_, i) => `m${i}`);
    const started = Date.now();
    let sent = 0;
    const sending = new Promise((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * sendRate) + 1);
        while (sent < due) sender.socket.emit("user-message", want[sent++]);
        if (sent === total) {
          clearInterval(tick);
          resolve();
        }
      }, 5);
    });

    // Every 2 s, kill the transports of connected clients that already hold
    // an offset to recover from: half closed by the engine, half cut.
    let kills = 0;
    const killer = setInterval(() => {
      const candidates = clients.filter((c) => c.socket.connected && c.inbox.messages.length > 0);
      for (let k = 0; k < killsPerRound && candidates.length > 0; k++) {
        const [victim] = candidates.splice(Math.floor(Math.random() * candidates.length), 1);
        if (kills++ % 2 === 0) victim.socket.io.engine.close();
        else dropTransport(victim.socket);
      }
    }, killEveryMs);
    try {
      await sending;
    } finally {
      clearInterval(killer);
    }

    await withDeadline(Promise.all(clients.map((c) =>
      c.inbox.waitUntil((b) => b.messages.length >= total, 8_000, `${total} messages`).catch(() => {}))),
    10_000, "every client to catch up");
    // Anything sent after the last message (a late duplicate) arrives
    // before a final marker does.
    sender.socket.emit("user-message", "end");
    await Promise.all(clients.map((c) =>
      c.inbox.waitUntil((b) => b.first.includes("end"), 4_000, "the end marker").catch(() => {})));

    const wrong = [];
    for (const [i, c] of clients.entries()) {
      const got = c.inbox.first;
      const end = got.indexOf("end");
      const body = end >= 0 ? got.slice(0, end) : got;
      const ok = end === got.length - 1 && body.length === total && body.every((m, k) => m === want[k]);
      if (!ok) {
        const seen = new Map();
        for (const m of body) seen.set(m, (seen.get(m) ?? 0) + 1);
        const missing = want.filter((m) => !seen.has(m));
        const twice = [...seen].filter(([, n]) => n > 1).map(([m]) => m);
        let k = 0;
        while (k < body.length && body[k] === want[k]) k++;
        wrong.push(`client ${i} (${c.mode}, now ${c.socket.connected ? "connected" : "disconnected"}): ` +
          `${body.length} messages${end < 0 ? ", no end marker" : ""}; ` +
          `missing ${missing.length} ${JSON.stringify(missing.slice(0, 5))}, ` +
          `duplicated ${twice.length} ${JSON.stringify(twice.slice(0, 5))}, first difference at #${k} (${body[k]})`);
      }
    }
    t.diagnostic(`${kills} transports killed; ${total} messages sent, checked ${Date.now() - started} ms after the first`);
    assert.deepEqual(wrong, [], `clients without every message exactly once, in order (${wrong.length} of ${clientCount})`);
  });
