// A Node.js node with the Socket.IO Admin UI's server side, for the mixed
// Go + Node.js Admin UI test (admin_test.go): the tutorial's chat on
// socket.io 4.8 with @socket.io/redis-adapter 8.x and
// instrument(io, { auth: false }) from @socket.io/admin-ui 0.5.1
// (development mode), joined to the other nodes through Redis.
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX=socket.io \
//     SERVER_ID=node-1 node test/cluster/node-admin-server.mjs
//
// It prints "listening on http://127.0.0.1:PORT" once the adapter is
// subscribed, and exits when stdin closes (its parent died) or on SIGTERM.
import { createServer } from "node:http";
import { once } from "node:events";
import { Server } from "socket.io";
import { createClient } from "redis";
import { createAdapter } from "@socket.io/redis-adapter";
import { instrument } from "@socket.io/admin-ui";

if (process.env.NODE_TEST_CONTEXT || !process.env.REDIS_URL) {
  // `node --test test/` runs every file under test/: this one is a server
  // for the Go tests, not a test.
  console.log("node-admin-server.mjs: not a test; set REDIS_URL (and PORT) to run the node");
  process.exit(0);
}

const prefix = process.env.REDIS_PREFIX || "socket.io";
const pubClient = createClient({ url: process.env.REDIS_URL });
const subClient = pubClient.duplicate();
for (const [name, c] of [["pub", pubClient], ["sub", subClient]]) {
  c.on("error", (err) => console.error(`redis ${name} error: ${err.message}`));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const server = createServer();
const io = new Server(server, { adapter: createAdapter(pubClient, subClient, { key: prefix }) });
instrument(io, { auth: false, mode: "development", serverId: process.env.SERVER_ID || "node" });
io.on("connection", (socket) => {
  socket.on("user-message", (message) => io.emit("message", message));
});

// Once a subscription of our own on the adapter's connection is confirmed,
// the adapter's (made before it) are too.
const probe = `${prefix}-probe#${process.pid}`;
await subClient.subscribe(probe, () => {});
await subClient.unsubscribe(probe);

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1");
await once(server, "listening");
console.log(`listening on http://127.0.0.1:${server.address().port}`);

const stop = () => {
  io.close();
  // The admin-ui publishes room_left a tick after each disconnection.
  setTimeout(() => Promise.allSettled([pubClient.quit(), subClient.quit()]).finally(() => process.exit(0)), 100);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
