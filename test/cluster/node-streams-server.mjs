// A Node.js node of the Go + Node.js cluster tests on Redis Streams
// (streams_cluster_test.go): the chat tutorial's index.js on socket.io 4.8
// with @socket.io/redis-streams-adapter 0.3.1, joined to the other nodes
// through one stream.
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379 REDIS_PREFIX=socket.io RECOVERY=120000 \
//     node test/cluster/node-streams-server.mjs
//
// Environment: PORT (0 picks a free one), REDIS_URL (a comma-separated list:
// a Redis Cluster through createCluster), REDIS_PREFIX (the
// adapter's streamName and channelPrefix, default "socket.io"), RECOVERY
// (connection state recovery window in ms; 0 or unset is off), PING_INTERVAL
// in ms (default 25000). It prints "listening on http://127.0.0.1:PORT
// uid=UID" once the adapter reads the stream and listens on its channels,
// one line per connection ("A new user has connected id=… recovered=…")
// and disconnection ("A user has disconnected id=… reason=…"),
// and exits when stdin closes (its parent died) or on SIGTERM.
import { createServer } from "node:http";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import express from "express";
import { Server } from "socket.io";
import { createClient, createCluster } from "redis";
import { createAdapter } from "@socket.io/redis-streams-adapter";

if (process.env.NODE_TEST_CONTEXT || !process.env.REDIS_URL) {
  // `node --test test/` runs every file under test/: this one is a server
  // for the Go tests, not a test.
  console.log("node-streams-server.mjs: not a test; set REDIS_URL (and PORT) to run the cluster node");
  process.exit(0);
}

const port = Number(process.env.PORT ?? 0);
const prefix = process.env.REDIS_PREFIX || "socket.io";
const recovery = Number(process.env.RECOVERY || 0);
const pingInterval = Number(process.env.PING_INTERVAL || 25000);

// The adapter duplicates this client (its name too): its reading and
// subscribing connections can then be found in CLIENT LIST.
const name = `node-streams-${process.pid}`;
// A comma-separated REDIS_URL is a Redis Cluster's root nodes (as -redis).
const redisClient = process.env.REDIS_URL.includes(",")
  ? createCluster({
      rootNodes: process.env.REDIS_URL.split(",").filter(Boolean).map((url) => ({ url })),
      defaults: { name },
    })
  : createClient({ url: process.env.REDIS_URL, name });
redisClient.on("error", (err) => console.error(`redis error: ${err.message}`));
await redisClient.connect();

const app = express();
const server = createServer(app);
const io = new Server(server, {
  pingInterval,
  adapter: createAdapter(redisClient, { streamName: prefix, channelPrefix: prefix }),
  ...(recovery > 0
    ? { connectionStateRecovery: { maxDisconnectionDuration: recovery, skipMiddlewares: true } }
    : {}),
});

const publicDir = fileURLToPath(new URL("../../public/", import.meta.url));
app.get("/", (req, res) => res.sendFile(publicDir + "index.html"));

io.on("connection", (socket) => {
  console.log(`A new user has connected id=${socket.id} recovered=${socket.recovered}`);
  socket.on("disconnect", (reason) => {
    console.log(`A user has disconnected id=${socket.id} reason=${reason}`);
  });
  socket.on("user-message", (message) => {
    io.emit("message", message);
  });
});

// The adapter starts reading and subscribing without waiting for Redis:
// wait until its connections are blocked in XREAD and subscribed.
// On a cluster, CLIENT LIST of every primary (the stream's, the channels').
const clientList = async () =>
  redisClient.masters
    ? (await Promise.all(redisClient.masters.map(async (m) => (await redisClient.nodeClient(m)).sendCommand(["CLIENT", "LIST"])))).join("\n")
    : redisClient.sendCommand(["CLIENT", "LIST"]);
for (let i = 0; ; i++) {
  const list = await clientList();
  const mine = list.split("\n").filter((l) => l.includes(` name=${name} `));
  if (mine.some((l) => l.includes(" cmd=xread")) && mine.some((l) => / cmd=(subscribe|ssubscribe)/.test(l))) {
    break;
  }
  if (i > 2000) {
    console.error("the adapter did not start reading within 20s");
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 10));
}

server.listen(port, "127.0.0.1");
await once(server, "listening");
console.log(`listening on http://127.0.0.1:${server.address().port} uid=${io.of("/").adapter.uid}`);

const stop = () => {
  io.close();
  redisClient.quit().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
