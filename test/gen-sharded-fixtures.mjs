// Writes socketio/shardedadapter/testdata/node-messages.json: what
// @socket.io/redis-adapter's createShardedAdapter publishes (channel and
// payload) for each operation, and what it answers to other nodes'
// requests, captured from the package itself through a stand-in for a
// node-redis v4 client (no Redis needed). The Go wire tests decode these
// and encode the same operations byte for byte.
//
//   node test/gen-sharded-fixtures.mjs
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Server } from "socket.io";
import { createShardedAdapter } from "@socket.io/redis-adapter";

if (process.env.NODE_TEST_CONTEXT) {
  console.log("gen-sharded-fixtures.mjs: a generator, not a test");
  process.exit(0);
}

const published = [];
const handlers = new Map();
const fake = {
  // util.isRedisV4Client looks for sSubscribe.
  sSubscribe(channel, handler) { handlers.set(channel, handler); },
  sUnsubscribe(channel) { handlers.delete(channel); },
  async sPublish(channel, payload) {
    published.push({ channel, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload) });
    return 1;
  },
  // PUBSUB SHARDNUMSUB: two servers.
  async sendCommand(args) { return [args[2], 2]; },
};

const io = new Server({ adapter: createShardedAdapter(fake, fake) });
const nsp = io.of("/");
const adapter = nsp.adapter;
const uid = adapter.uid;
const cases = [];
const tick = () => new Promise((r) => setImmediate(r));
async function capture(name, fn) {
  published.length = 0;
  fn();
  for (let i = 0; i < 5; i++) await tick();
  for (const m of published) {
    cases.push({ name, channel: m.channel, json: m.payload[0] === 0x7b, payload: m.payload.toString("base64") });
  }
  if (published.length === 0) throw new Error(`${name}: nothing published`);
}
// What another node sends, delivered as Redis would.
function deliver(channel, message) {
  handlers.get(channel)(Buffer.from(JSON.stringify(message)), Buffer.from(channel));
}
const other = "fedcba9876543210";
const main = `socket.io#/#`;

await capture("broadcast", () => nsp.emit("message", "hi", { a: [1, 2.5, null], "é": "\u2028" }));
await capture("broadcast-room", () => nsp.to("room1").emit("m", 1));
await capture("broadcast-rooms-except-volatile", () => nsp.to("r1").to("r2").except("x").volatile.emit("m", true));
await capture("broadcast-sid", () => nsp.to("abcdefghijklmnopqrst").emit("m"));
await capture("broadcast-binary", () => nsp.emit("bin", Buffer.from([1, 2, 3]), { b: Buffer.from([4]) }));
await capture("broadcast-ack", () => nsp.timeout(1000).emit("ask", "q", () => {}));
await capture("sockets-join", () => nsp.in("a").socketsJoin(["r1", "r2"]));
await capture("sockets-leave", () => nsp.except("b").socketsLeave("r1"));
await capture("disconnect-sockets", () => nsp.in("a").disconnectSockets(true));
await capture("server-side-emit", () => nsp.serverSideEmit("hello", "world", 1));
await capture("server-side-emit-ack", () => nsp.serverSideEmit("ping", 2, () => {}));
await capture("fetch-sockets", () => { nsp.in("r1").fetchSockets().catch(() => {}); });
nsp.on("ping", (n, cb) => cb({ pong: n }));
await capture("server-side-emit-response", () =>
  deliver(main, { type: 9, data: { requestId: "req1", packet: ["ping", 7] }, uid: other, nsp: "/" }));
await capture("fetch-sockets-response", () =>
  deliver(main, { type: 7, data: { opts: { rooms: [], except: [] }, requestId: "req2" }, uid: other, nsp: "/" }));
await capture("broadcast-client-count", () =>
  deliver(main, { type: 3, data: { packet: { type: 2, data: ["x"] }, requestId: "req3", opts: { rooms: [], except: [], flags: { timeout: 100 } } }, uid: other, nsp: "/" }));

const out = fileURLToPath(new URL("../socketio/shardedadapter/testdata/node-messages.json", import.meta.url));
writeFileSync(out, JSON.stringify({ uid, cases }, null, 1) + "\n");
console.log(`wrote ${cases.length} messages to ${out}`);
process.exit(0);
