// A Node.js node for TestNodeRequests: socket.io 4.8 with
// @socket.io/redis-streams-adapter 0.3.1 on Redis, with one socket.io-client
// of its own connected to it. It takes commands as JSON lines on stdin and
// writes what happens as JSON lines on stdout (Buffers shown as
// {"hex": ...}). It exits when stdin closes.
//
//	REDIS_URL=redis://127.0.0.1:6379 STREAM=test node node-peer.mjs
import { createServer } from "node:http";
import readline from "node:readline";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createClient } from "redis";
import { createAdapter } from "@socket.io/redis-streams-adapter";

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const show = (v) =>
  JSON.parse(
    JSON.stringify(v, (k, x) =>
      x && x.type === "Buffer" && Array.isArray(x.data) ? { hex: Buffer.from(x.data).toString("hex") } : x,
    ),
  );

const stream = process.env.STREAM;
const redisClient = createClient({ url: process.env.REDIS_URL });
redisClient.on("error", (err) => out({ ev: "redis-error", err: err.message }));
await redisClient.connect();
const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(redisClient, { streamName: stream, channelPrefix: stream }),
});

io.on("connection", (socket) => {
  socket.data = { name: "node" };
  socket.join("room1");
});
io.on("ping", (x, cb) => cb({ pong: x }));
io.on("note", (...args) => out({ ev: "note", args: show(args) }));

await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
const client = connect(`http://127.0.0.1:${httpServer.address().port}`, {
  transports: ["websocket"],
  auth: { token: "node" },
});
client.on("message", (...args) => out({ ev: "message", args: show(args) }));
client.on("ask", (x, cb) => cb({ node: x }));
await new Promise((r) => client.on("connect", r));

const commands = {
  emit() {
    io.emit("message", { int: 42, float: 1.5, nested: { b: 1, a: 2 }, bin: Buffer.from([1, 2, 3]) }, "é😀");
  },
  sseAck() {
    io.serverSideEmit("go-ping", "from node", (err, res) => out({ ev: "sseAck", err: err && err.message, res: show(res) }));
  },
  async fetch() {
    const sockets = await io.fetchSockets();
    out({ ev: "fetch", sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data })) });
  },
  ask() {
    io.timeout(3000).emit("ask", "from node", (err, res) => out({ ev: "ask", err: err && err.message, res: show(res) }));
  },
  join({ sid, room }) {
    io.in(sid).socketsJoin(room);
  },
};

readline.createInterface({ input: process.stdin }).on("line", async (line) => {
  const cmd = JSON.parse(line);
  try {
    await commands[cmd.cmd](cmd);
  } catch (err) {
    out({ ev: "error", cmd: cmd.cmd, err: err.message });
  }
});
process.stdin.on("end", () => process.exit(0));
out({ ev: "ready", id: client.id });
