// A Node.js node of the mixed Go + Node.js cluster tests (cluster_test.go):
// the chat tutorial's index.js on socket.io 4.8 with @socket.io/redis-adapter
// 8.x, joined to the other nodes through Redis.
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX=socket.io \
//     node test/cluster/node-server.mjs
//
// Environment: PORT (0 picks a free one), REDIS_URL (a comma-separated list:
// a Redis Cluster through createCluster), REDIS_PREFIX (the
// adapter's `key`, default "socket.io"), PING_INTERVAL in ms (default 25000).
// It prints "listening on http://127.0.0.1:PORT uid=UID" once the adapter is
// subscribed, logs one line per Redis error, and exits when stdin closes (its
// parent died) or on SIGTERM.
import { createServer } from "node:http";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import express from "express";
import { Server } from "socket.io";
import { createClient, createCluster } from "redis";
import { createAdapter } from "@socket.io/redis-adapter";

if (process.env.NODE_TEST_CONTEXT || !process.env.REDIS_URL) {
  // `node --test test/` runs every file under test/: this one is a server
  // for the Go tests, not a test.
  console.log("node-server.mjs: not a test; set REDIS_URL (and PORT) to run the cluster node");
  process.exit(0);
}

const port = Number(process.env.PORT ?? 0);
const prefix = process.env.REDIS_PREFIX || "socket.io";
const pingInterval = Number(process.env.PING_INTERVAL || 25000);

// A comma-separated REDIS_URL is a Redis Cluster's root nodes (as -redis).
const pubClient = process.env.REDIS_URL.includes(",")
  ? createCluster({ rootNodes: process.env.REDIS_URL.split(",").filter(Boolean).map((url) => ({ url })) })
  : createClient({ url: process.env.REDIS_URL });
const subClient = pubClient.duplicate();
for (const [name, c] of [["pub", pubClient], ["sub", subClient]]) {
  c.on("error", (err) => console.error(`redis ${name} error: ${err.message}`));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const app = express();
const server = createServer(app);
const io = new Server(server, {
  pingInterval,
  adapter: createAdapter(pubClient, subClient, { key: prefix }),
});

const publicDir = fileURLToPath(new URL("../../public/", import.meta.url));
app.get("/", (req, res) => res.sendFile(publicDir + "index.html"));

io.on("connection", (socket) => {
  console.log(`A new user has connected id=${socket.id} transport=${socket.conn.transport.name}`);
  socket.on("user-message", (message) => {
    io.emit("message", message);
  });
});

// The adapter subscribes in its constructor without waiting for Redis. A
// subscription of our own on the same connection is confirmed after the
// adapter's ones (Redis answers in order), so once it is, the node hears
// the cluster.
const probe = `${prefix}-probe#${process.pid}`;
await subClient.subscribe(probe, () => {});
await subClient.unsubscribe(probe);

server.listen(port, "127.0.0.1");
await once(server, "listening");
console.log(`listening on http://127.0.0.1:${server.address().port} uid=${io.of("/").adapter.uid}`);

const stop = () => {
  io.close();
  Promise.allSettled([pubClient.quit(), subClient.quit()]).finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
