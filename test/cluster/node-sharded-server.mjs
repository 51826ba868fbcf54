// A Node.js node of the sharded-adapter tests (socketio/shardedadapter):
// the chat tutorial's index.js on socket.io 4.8 with
// @socket.io/redis-adapter 8.x's createShardedAdapter (Redis 7 sharded
// pub/sub, subscriptionMode "dynamic"), on a Redis Cluster through
// node-redis's createCluster, or on one Redis 7.
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:7000,redis://127.0.0.1:7001 \
//     node test/cluster/node-sharded-server.mjs
//
// Environment: PORT (0 picks a free one), REDIS_URL (one URL: a single
// Redis; a comma-separated list: the cluster's root nodes, as -redis),
// REDIS_PREFIX (channelPrefix, default "socket.io").
// Besides the chat ("user-message" → io.emit("message")), a client may
// "join" a room, "to-room" [room, text] emits "message" to that room, and
// the server-side event "ping" answers {pong: its argument, node: "node"}.
// "fetch" answers with the ids of io.fetchSockets(); "sse" answers with the
// responses to serverSideEmit("ping", n); "ask-all" with the acks of
// io.timeout(5000).emit("ask", "q") from every client.
// It prints "listening on http://127.0.0.1:PORT uid=UID" once subscribed,
// and exits when stdin closes or on SIGTERM.
import { createServer } from "node:http";
import { once } from "node:events";
import { Server } from "socket.io";
import { createClient, createCluster } from "redis";
import { createShardedAdapter } from "@socket.io/redis-adapter";

if (process.env.NODE_TEST_CONTEXT || !process.env.REDIS_URL) {
  console.log("node-sharded-server.mjs: not a test; set REDIS_URL (and PORT) to run the cluster node");
  process.exit(0);
}

const port = Number(process.env.PORT ?? 0);
const prefix = process.env.REDIS_PREFIX || "socket.io";
const urls = process.env.REDIS_URL.split(",").filter(Boolean);

const pubClient = urls.length > 1 || process.env.REDIS_URL.includes(",")
  ? createCluster({ rootNodes: urls.map((url) => ({ url })) })
  : createClient({ url: urls[0] });
const subClient = pubClient.duplicate();
for (const [name, c] of [["pub", pubClient], ["sub", subClient]]) {
  c.on("error", (err) => console.error(`redis ${name} error: ${err.message}`));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const server = createServer();
const io = new Server(server, { adapter: createShardedAdapter(pubClient, subClient, { channelPrefix: prefix }) });

io.on("connection", (socket) => {
  socket.on("user-message", (message) => io.emit("message", message));
  socket.on("join", (room, cb) => { socket.join(room); cb?.("joined"); });
  socket.on("to-room", (room, text) => io.to(room).emit("message", text));
  socket.on("fetch", async (cb) => {
    try {
      const sockets = await io.fetchSockets();
      cb(sockets.map((s) => s.id).sort());
    } catch (e) {
      cb({ error: e.message });
    }
  });
  socket.on("ask-all", (cb) => {
    io.timeout(5000).emit("ask", "q", (err, responses) => cb({ err: err?.message ?? null, responses: responses.sort() }));
  });
  socket.on("sse", (n, cb) => {
    io.serverSideEmit("ping", n, (err, responses) => cb({ err: err?.message ?? null, responses }));
  });
});
io.on("ping", (n, cb) => cb({ pong: n, node: "node" }));

// sSubscribe resolves once Redis confirmed: subscribing a probe on the same
// channel's shard after the adapter's own makes sure they are in place.
const main = `${prefix}#/#`;
await subClient.sSubscribe(main, () => {});

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
