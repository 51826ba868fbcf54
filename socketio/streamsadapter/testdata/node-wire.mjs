// Prints, as one JSON object, what @socket.io/redis-streams-adapter 0.3.1
// writes for a few messages (wire_test.go compares with our encoders):
// the data field of stream entries (its encode(): JSON.stringify, or the
// base64 of @msgpack/msgpack's encoding when there is binary), sessions
// (persistSession) and the stream of a namespace (computeStreamName).
//
// The messages are built as socket.io 4.8's BroadcastOperator.emit and
// ClusterAdapter.broadcast build them: packet {type: 2, data}, options
// {rooms, except, flags}.
import { encode } from "@msgpack/msgpack";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { hashCode } = require("@socket.io/redis-streams-adapter/dist/util.js");

// RedisStreamsAdapter.encode's data field.
function data(d) {
  const hasBinary = JSON.stringify(d, (k, v) => (v && v.type === "Buffer" ? "BIN" : v)).includes('"BIN"');
  return hasBinary ? Buffer.from(encode(d)).toString("base64") : JSON.stringify(d);
}
const broadcast = (args, rooms = [], except = [], flags = {}) =>
  data({ packet: { type: 2, data: args }, opts: { rooms, except, flags } });

const out = {
  plain: broadcast(["message", "hi", 1, 2.5, -3, { a: [true, null], "é": "😀" }]),
  rooms: broadcast(["message", "x"], ["r1", "r2"], ["e"], { volatile: true }),
  binary: broadcast(["file", Buffer.from([1, 2, 3]), { n: 300, big: 70000, neg: -200, f: 0.5 }]),
  join: JSON.stringify({ opts: { rooms: ["a"], except: [] }, rooms: ["r"] }),
  session: Buffer.from(encode({ sid: "s1", pid: "p1", rooms: ["s1", "room"], data: { user: "ann", n: 42 } })).toString("base64"),
  streams: Object.fromEntries(["/", "/admin", "/chat", "/ü😀", "/a-very-long-namespace-name", "/zzzzzz"].map((n) => [n, hashCode(n)])),
};
console.log(JSON.stringify(out));
