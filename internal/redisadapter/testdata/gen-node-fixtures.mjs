// Regenerates node-publish.json: the exact bytes that Node's
// @socket.io/redis-adapter 8.x publishes for a few broadcasts, captured from a
// real socket.io 4.8 server whose Redis clients only record what they are
// given. Run from the repository root: node internal/redisadapter/testdata/gen-node-fixtures.mjs
import { writeFileSync } from "node:fs";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";

const published = [];
const fakeClient = {
  pSubscribe() {},
  subscribe() {},
  on() {},
  off() {},
  publish(channel, msg) {
    published.push({ channel, msg: Buffer.isBuffer(msg) ? msg : Buffer.from(msg) });
  },
};
const io = new Server({ adapter: createAdapter(fakeClient, fakeClient, { key: "fixture" }) });
const uid = io.of("/").adapter.uid;

const cases = [
  ["emit-all", () => io.emit("message", "hello")],
  ["emit-room", () => io.to("room1").emit("message", "to room1")],
  ["emit-rooms-except", () => io.to(["a", "b"]).except("c").emit("message", 1)],
  ["emit-flags", () => io.volatile.compress(false).emit("message", "v")],
  [
    "emit-values",
    () =>
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
  ],
  ["emit-nsp", () => io.of("/admin").emit("message", "admin")],
];

const out = { uid, adminUid: io.of("/admin").adapter.uid, cases: [] };
for (const [name, run] of cases) {
  published.length = 0;
  run();
  if (published.length !== 1) throw new Error(`${name}: ${published.length} publications`);
  out.cases.push({ name, channel: published[0].channel, hex: published[0].msg.toString("hex") });
}
writeFileSync(new URL("./node-publish.json", import.meta.url), JSON.stringify(out, null, 2) + "\n");
process.exit(0);
