// A client the server disconnects (here: for flooding) learns it as
// socket.io-client learns it from Node's server: the DISCONNECT packet
// arrives before the transport closes, so the client reports
// "io server disconnect" and does not reconnect on its own, instead of
// "transport close" (and reconnecting to flood again).
import assert from "node:assert/strict";
import { serverTest } from "../lib/server.mjs";
import { MODES, connect, waitForEvent, waitForUpgrade } from "../lib/client.mjs";

const burst = 100;
const floodEvents = 4 * burst; // at once: far more than a burst is refused

for (const mode of MODES) {
  serverTest(`[${mode.name}] a flooding client is disconnected with "io server disconnect"`,
    { flags: ["-event-rate", "50", "-event-burst", String(burst)] }, async (t, srv) => {
      const flooder = await connect(srv, mode, { reconnection: true, reconnectionDelay: 100 });
      const bystander = await connect(srv, mode);
      if (mode.name === "upgrade") await Promise.all([waitForUpgrade(flooder.socket), waitForUpgrade(bystander.socket)]);
      const id = flooder.socket.id;

      const disconnected = waitForEvent(flooder.socket, "disconnect", 10_000);
      for (let i = 0; i < floodEvents; i++) flooder.socket.emit("user-message", `flood ${i}`);
      const [reason] = await disconnected;
      await srv.waitForLog((r) => r.id === id && "reason" in r, 5_000, `the disconnect of ${id}`);
      assert.equal(reason, "io server disconnect",
        "the client's disconnect reason: the server's DISCONNECT packet must reach it before the transport closes");
      assert.equal(flooder.socket.active, false, "after a server disconnect the client does not reconnect by itself");

      // The others chat on.
      bystander.socket.emit("user-message", "still here");
      await bystander.inbox.waitUntil((b) => b.first.includes("still here"), 5_000, "the bystander's own message");
    });
}
