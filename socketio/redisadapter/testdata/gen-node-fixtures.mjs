// Regenerates node-publish.json: the exact bytes that Node's
// @socket.io/redis-adapter 8.x publishes for broadcasts, requests and
// answers, captured from a real socket.io 4.8 server whose Redis clients
// only record what they are given (and report two subscribers to PUBSUB
// NUMSUB). The answers come from a real client connected to that server.
// Run from the repository root:
//
//	node socketio/redisadapter/testdata/gen-node-fixtures.mjs
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createAdapter } from "@socket.io/redis-adapter";
import msgpack from "notepack.io";

const published = [];
const fakeClient = {
  pSubscribe() {},
  subscribe() {},
  on() {},
  off() {},
  publish(channel, msg) {
    published.push({ channel, msg: Buffer.isBuffer(msg) ? msg : Buffer.from(msg) });
    return Promise.resolve(1);
  },
  // PUBSUB NUMSUB: this node and one other.
  send_command(cmd, args, cb) {
    cb(null, [args[1], 2]);
  },
};
const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(fakeClient, fakeClient, { key: "fixture", requestsTimeout: 200 }),
});
const uid = io.of("/").adapter.uid;
const tick = () => new Promise((r) => setTimeout(r, 20));

const out = { uid, adminUid: io.of("/admin").adapter.uid, requestIds: {}, cases: [] };

async function capture(name, run, { count = 1, requestId = false } = {}) {
  published.length = 0;
  await run();
  for (let i = 0; i < 50 && published.length < count; i++) await tick();
  if (published.length !== count) throw new Error(`${name}: ${published.length} publications`);
  for (const [i, p] of published.entries()) {
    const n = count === 1 ? name : `${name}-${i}`;
    out.cases.push({ name: n, channel: p.channel, hex: p.msg.toString("hex") });
    if (requestId) {
      const req = p.msg[0] === 0x7b ? JSON.parse(p.msg.toString()) : msgpack.decode(p.msg);
      out.requestIds[n] = req.requestId;
    }
  }
}

// Broadcasts.
await capture("emit-all", () => io.emit("message", "hello"));
await capture("emit-room", () => io.to("room1").emit("message", "to room1"));
await capture("emit-rooms-except", () => io.to(["a", "b"]).except("c").emit("message", 1));
await capture("emit-flags", () => io.volatile.compress(false).emit("message", "v"));
await capture("emit-volatile", () => io.volatile.emit("message", "v"));
await capture("emit-timeout", () => io.timeout(1500).emit("message", "t"));
await capture("emit-values", () =>
  io.emit("message", {
    int: 42,
    neg: -7,
    big: 2 ** 40,
    float: 1.5,
    str: "é✓",
    t: true,
    f: false,
    nil: null,
    undef: undefined,
    list: [1, "two", null],
    bin: Buffer.from([0, 1, 2, 255]),
  }),
);
await capture("emit-nsp", () => io.of("/admin").emit("message", "admin"));
await capture("emit-binary-nested", () =>
  io.emit("message", { a: [Buffer.from([1, 2]), { b: Buffer.from([3]) }] }, Buffer.from([4]), "x"),
);
await capture("emit-keys", () => io.emit("message", JSON.parse('{"b":1,"2":2,"a":3,"1":4,"b":5}')));

// Requests.
await capture("request-join", () => io.in("a").socketsJoin(["b", "c"]));
await capture("request-leave", () => io.except("a").socketsLeave("b"));
await capture("request-disconnect", () => io.in("a").disconnectSockets(true));
await capture("request-sse", () => io.serverSideEmit("ping", 1, { a: Buffer.from([1, 2]) }));
await capture("request-sse-ack", () => io.serverSideEmit("ping", "x", () => {}), { requestId: true });
await capture("request-fetch", () => io.in("room1").except("room2").fetchSockets().catch(() => {}), {
  requestId: true,
});
await capture("request-broadcast-ack", () => io.timeout(1500).emit("message", "q", { n: 1 }, () => {}), {
  requestId: true,
});

// Answers, from a server with one client.
await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
io.on("connection", (socket) => {
  socket.data = { name: "ann", n: 1 };
  socket.join("room1");
  socket.emit("ready");
});
io.on("ping", (arg, cb) => cb({ pong: arg, bin: Buffer.from([9]) }));
const client = connect(`http://127.0.0.1:${httpServer.address().port}`, {
  transports: ["websocket"],
  auth: { token: "abc" },
  query: { q: "1" },
});
client.on("message", (x, cb) => cb && cb({ ok: true, bin: Buffer.from([7]) }));
await new Promise((r) => client.on("ready", r));
out.socketId = client.id;
const adapter = io.of("/").adapter;
const request = (obj) => adapter.onrequest(adapter.requestChannel, Buffer.from(JSON.stringify(obj)));

await capture("answer-fetch", () =>
  request({ uid: "other", requestId: "req-fetch", type: 5, opts: { rooms: [], except: [] } }),
);
await capture("answer-sockets", () => request({ uid: "other", requestId: "req-sockets", type: 0, rooms: ["room1"] }));
await capture("answer-rooms", () => request({ uid: "other", requestId: "req-rooms", type: 1 }));
await capture("answer-sse-ack", () =>
  request({ uid: "other", requestId: "req-sse", type: 6, data: ["ping", "hi"] }),
);
await capture(
  "answer-broadcast-ack",
  () =>
    adapter.onrequest(
      adapter.requestChannel,
      msgpack.encode({
        uid: "other",
        requestId: "req-bwa",
        type: 7,
        packet: { type: 2, data: ["message", "q"], nsp: "/" },
        opts: { rooms: [], except: [], flags: { timeout: 1000 } },
      }),
    ),
  { count: 2 },
);

client.close();
writeFileSync(new URL("./node-publish.json", import.meta.url), JSON.stringify(out, null, 2) + "\n");
process.exit(0);
