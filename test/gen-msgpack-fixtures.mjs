// Writes socketio/testdata/msgpack-parser.json: packets encoded by the real
// socket.io-msgpack-parser 3.0.2 (notepack.io), for socketio's Go tests.
//
//   node test/gen-msgpack-fixtures.mjs
//
// "client" packets are what socket.io-client sends (its packet objects, as
// Node's notepack.io and the browser build encode them), with what a Node
// server's handlers would get, written as JSON.stringify writes it for a
// JSON client (binary values as socket.io-parser's placeholders, numbered
// from 0 in each argument). "server" packets are what a Node server
// writes for the same arguments, which Go must write byte for byte.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const parser = require("socket.io-msgpack-parser");
const notepackDir = require.resolve("notepack.io", { paths: [require.resolve("socket.io-msgpack-parser")] });
const decode = require(notepackDir.replace(/index\.js$/, "decode.js"));
const browserEncode = require(notepackDir.replace(/lib\/index\.js$/, "browser/encode.js"));

const encoder = new parser.Encoder();
const hex = (b) => Buffer.from(b).toString("hex");
const nodeEncode = (p) => hex(encoder.encode(p)[0]);

// argJSON is an argument as a JSON client receives it from Node, with its
// binary values as attachments.
function argJSON(v) {
  const atts = [];
  const text = JSON.stringify(v, function (key, value) {
    const orig = this[key];
    if (Buffer.isBuffer(orig) || orig instanceof ArrayBuffer || ArrayBuffer.isView(orig)) {
      atts.push(hex(orig instanceof ArrayBuffer ? new Uint8Array(orig) : orig));
      return { _placeholder: true, num: atts.length - 1 };
    }
    return value;
  });
  return { json: text === undefined ? "null" : text, attachments: atts };
}

const long = (n) => "x".repeat(n);
const manyKeys = Object.fromEntries(Array.from({ length: 16 }, (_, i) => ["k" + i, i]));
const bytes = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));

// Arguments of every payload type.
const argSets = {
  string: ["hello", "héllo ✓ 😀", "", long(31), long(32), long(255), long(256)],
  number: [0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, 1.5, -0.25, 1e19, 5e-7, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
  bool: [true, false],
  null: [null],
  object: [{ a: 1, b: "two", c: null }, {}, manyKeys, { 2: "b", 1: "a", x: "y" }],
  array: [[1, "a", false], [], Array.from({ length: 16 }, (_, i) => i)],
  nested: [{ user: { name: "ann", tags: ["a", "b"], meta: { deep: [[{ x: 1 }]] } } }],
  binary: [bytes(3), bytes(0), bytes(300), { file: bytes(2), name: "f" }, [bytes(1), "s", bytes(2)]],
};

const client = [];
const server = [];

for (const [name, args] of Object.entries(argSets)) {
  // socket.emit(event, ...args): the packet socket.io-client builds.
  const packet = { type: 2, data: ["chat " + name, ...args], options: { compress: true }, nsp: "/" };
  client.push({
    name: "event " + name,
    hex: nodeEncode(packet),
    type: 2, nsp: "/", id: -1,
    event: "chat " + name,
    args: args.map(argJSON),
  });
  // A Node server broadcasting them: {type, data, nsp}.
  server.push({
    name: "broadcast " + name,
    hex: nodeEncode({ type: 2, data: ["chat " + name, ...args], nsp: "/" }),
    kind: "event", nsp: "/", id: -1, event: "chat " + name,
    args: args.map(argJSON),
  });
}

// Acknowledgements, both ways, in a namespace.
client.push({
  name: "event with ack",
  hex: nodeEncode({ type: 2, data: ["ask", 1, { q: "?" }], options: { compress: true }, id: 7, nsp: "/chat" }),
  type: 2, nsp: "/chat", id: 7, event: "ask", args: [1, { q: "?" }].map(argJSON),
});
client.push({
  name: "ack",
  hex: nodeEncode({ type: 3, data: ["ok", bytes(4)], nsp: "/chat", id: 12 }),
  type: 3, nsp: "/chat", id: 12, args: ["ok", bytes(4)].map(argJSON),
});
server.push({
  name: "emit with ack",
  hex: nodeEncode({ type: 2, data: ["ask", "why"], id: 3, nsp: "/chat" }),
  kind: "event", nsp: "/chat", id: 3, event: "ask", args: ["why"].map(argJSON),
});
server.push({
  name: "ack",
  hex: nodeEncode({ id: 5, type: 3, data: ["ok", 42, bytes(2)], nsp: "/" }),
  kind: "ack", nsp: "/", id: 5, args: ["ok", 42, bytes(2)].map(argJSON),
});

// What other encoders write: the browser build (ArrayBuffer as bin), Node
// typed arrays (ext 0), dates (fixext 8) and undefined (fixext 1).
const browserPacket = { type: 2, data: ["file", new Uint8Array([9, 8, 7]).buffer, "x"], options: { compress: true }, nsp: "/" };
client.push({
  name: "browser ArrayBuffer",
  hex: hex(browserEncode(browserPacket)),
  type: 2, nsp: "/", id: -1, event: "file", args: [Buffer.from([9, 8, 7]), "x"].map(argJSON),
});
const extPacket = { type: 2, data: ["typed", new Uint8Array([1, 2]), new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)), [1, undefined, 2], { a: undefined, b: 1 }], options: { compress: true }, nsp: "/" };
const extHex = nodeEncode(extPacket);
client.push({
  name: "typed array, date, undefined",
  hex: extHex,
  type: 2, nsp: "/", id: -1, event: "typed",
  // as a Node server sees it once notepack.io decoded it
  args: decode(Buffer.from(extHex, "hex")).data.slice(1).map(argJSON),
});

// An integer beyond 2^64: notepack.io writes it modulo 2^64 (a Node
// server's handlers get that number); Go reads the same. (Go writes such
// numbers as float 64, which every decoder reads right.)
const hugeHex = nodeEncode({ type: 2, data: ["huge", 1e21], options: { compress: true }, nsp: "/" });
client.push({
  name: "integer beyond 2^64",
  hex: hugeHex,
  type: 2, nsp: "/", id: -1, event: "huge",
  args: decode(Buffer.from(hugeHex, "hex")).data.slice(1).map(argJSON),
});

// Control packets.
client.push({ name: "connect", hex: nodeEncode({ type: 0, nsp: "/" }), type: 0, nsp: "/", id: -1 });
client.push({
  name: "connect with auth",
  hex: nodeEncode({ type: 0, data: { token: "abc", n: 1, pid: "p", offset: "o" }, nsp: "/admin" }),
  type: 0, nsp: "/admin", id: -1, data: JSON.stringify({ token: "abc", n: 1, pid: "p", offset: "o" }),
});
client.push({ name: "disconnect", hex: nodeEncode({ type: 1, nsp: "/chat" }), type: 1, nsp: "/chat", id: -1 });

server.push({ name: "connect", hex: nodeEncode({ type: 0, data: { sid: "abc" }, nsp: "/" }), kind: "control", type: 0, nsp: "/", data: JSON.stringify({ sid: "abc" }) });
server.push({ name: "connect with pid", hex: nodeEncode({ type: 0, data: { sid: "abc", pid: "def" }, nsp: "/chat" }), kind: "control", type: 0, nsp: "/chat", data: JSON.stringify({ sid: "abc", pid: "def" }) });
server.push({ name: "connect_error", hex: nodeEncode({ type: 4, data: { message: "not authorized", data: { code: 3 } }, nsp: "/" }), kind: "control", type: 4, nsp: "/", data: JSON.stringify({ message: "not authorized", data: { code: 3 } }) });
server.push({ name: "disconnect", hex: nodeEncode({ type: 1, nsp: "/chat" }), kind: "control", type: 1, nsp: "/chat" });

// Packets the real decoder refuses (checkPacket or notepack.io).
const refused = [];
for (const [name, p] of Object.entries({
  "type 5": { type: 5, data: ["x"], nsp: "/" },
  "type string": { type: "2", data: ["x"], nsp: "/" },
  "no nsp": { type: 2, data: ["x"] },
  "nsp number": { type: 2, data: ["x"], nsp: 1 },
  "event without array": { type: 2, data: "x", nsp: "/" },
  "connect with array": { type: 0, data: [1], nsp: "/" },
  "disconnect with data": { type: 1, data: {}, nsp: "/" },
  "id string": { type: 2, data: ["x"], nsp: "/", id: "1" },
  "id float": { type: 2, data: ["x"], nsp: "/", id: 1.5 },
})) {
  const h = nodeEncode(p);
  let threw = false;
  try { new parser.Decoder().add(Buffer.from(h, "hex")); } catch { threw = true; }
  if (!threw) throw new Error("not refused by socket.io-msgpack-parser: " + name);
  refused.push({ name, hex: h });
}
for (const [name, h] of Object.entries({ "trailing bytes": nodeEncode({ type: 1, nsp: "/" }) + "00", truncated: nodeEncode({ type: 2, data: ["x"], nsp: "/" }).slice(0, -4), "not a map": "c0" })) {
  refused.push({ name, hex: h });
}

const out = fileURLToPath(new URL("../socketio/testdata/msgpack-parser.json", import.meta.url));
writeFileSync(out, JSON.stringify({ generator: "test/gen-msgpack-fixtures.mjs", parser: "socket.io-msgpack-parser@3.0.2", client, server, refused }, null, 1) + "\n");
console.log("wrote", out, client.length, "client,", server.length, "server,", refused.length, "refused packets");
