// Regenerates node-transcode.json: how Node turns event arguments into the
// msgpack that @socket.io/redis-adapter publishes (notepack.io), and the
// msgpack it receives back into what its clients get (socket.io-parser's
// packet text and attachments). The Go transcoders are checked against it.
// Run from the repository root:
//
//	node socketio/redisadapter/testdata/gen-node-transcode.mjs
import { writeFileSync } from "node:fs";
import msgpack from "notepack.io";
import { Encoder } from "socket.io-parser";

const encoder = new Encoder();

// What a Node node sends its clients for data: packet text, attachments.
function toClient(data) {
  const [text, ...bins] = encoder.encode({ type: 2, nsp: "/", data });
  return { text, bins: bins.map((b) => Buffer.from(b).toString("hex")) };
}

const out = { values: [], raw: [], msgpack: [] };

// values: arguments as a Node node holds them. A Go node must publish what
// notepack.io writes for them, and read notepack.io's bytes into what
// socket.io-parser writes. nodeBug marks values notepack.io garbles
// (the Go side keeps them instead); decodeOnly those JSON cannot carry.
const values = [
  ["numbers", [0, 1, -1, 31, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 2 ** 64 - 2 ** 11]],
  ["negative", [-31, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53), -(2 ** 63)]],
  ["floats", [1.5, 0.1, -0.5, 1e-7, 5e-7, 1.25e-6, 123e-20, -1e-300, Number.MIN_VALUE, 2 ** -1074, 0.30000000000000004, 2 ** 64 - 2 ** 11]],
  ["negative zero", -0],
  ["strings", ["", "a", "é✓", "😀", "x".repeat(31), "x".repeat(32), "é".repeat(20), "y".repeat(300), "\u2028\u2029", "\u0000\u001f\"\\/\b\f\n\r\t\u007f", "</script>"]],
  ["literals", [true, false, null]],
  ["empty", [{}, [], ""]],
  ["nested", { a: { b: { c: [1, [2, [3, { d: "e" }]]] } } }],
  ["object keys", { b: 1, 2: 2, a: 3, 1: 4, 10: 5, "01": 6, 4294967294: 7, 4294967295: 8, "": 9, "-1": 10 }],
  ["many keys", Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${(i * 7) % 40}`, i]))],
  ["binary", Buffer.from([0, 1, 2, 255])],
  ["binary nested", { a: [Buffer.from([1, 2]), { b: Buffer.from([3]) }], c: Buffer.alloc(0), d: Buffer.alloc(300, 1) }],
  ["undefined members", { a: undefined, b: 1, c: [undefined, 2] }],
  ["proto key", JSON.parse('{"__proto__":1,"a":2}')],
  ["date", new Date(1700000000123), { decodeOnly: true }],
  ["date seconds", new Date(1700000000000), { decodeOnly: true }],
  ["date old", new Date(-1), { decodeOnly: true }],
  ["date far", new Date(8.64e15), { decodeOnly: true }],
  ["big integers", [2 ** 64, 1e20, 1e21, 1.5e300, Number.MAX_VALUE, -(2 ** 63) - 2 ** 11], { nodeBug: true }],
  ["lone surrogate", "\ud800x", { nodeBug: true }],
  ["lone surrogate long", "\udc00".repeat(40), { nodeBug: true }],
];
for (const [name, value, flags = {}] of values) {
  const data = ["m", value];
  out.values.push({ name, msgpack: msgpack.encode(data).toString("hex"), client: toClient(data), ...flags });
}

// raw: JSON text as a client might send it: JSON.parse reads it (key order,
// repeated keys, number spelling, escapes), notepack.io writes the result,
// and socket.io-parser writes it back.
const raw = [
  '{"b":1,"2":2,"a":3,"1":4,"b":5}',
  '{"a":1,"a":{"x":1},"a":2}',
  '{"4294967295":1,"4294967294":2,"01":3,"1":4,"0":5}',
  ' [ 1 , 2 , { "a" : [ ] } ] ',
  "1.0",
  "1E2",
  "-0",
  "-0.0",
  "0.1e1",
  "1e400",
  "-1e400",
  "1e-400",
  "12345678901234567890",
  "9007199254740993",
  '"\\u0041\\/\\b\\u00e9\\u2028"',
  '"\\ud83d\\ude00"',
  '"\\uD83D\\uDE00"',
  '{"__proto__":{"a":1},"b":2}',
];
for (const text of raw) {
  const data = ["m", JSON.parse(text)];
  out.raw.push({ text, msgpack: msgpack.encode(data).toString("hex"), client: toClient(data) });
}

// msgpack: bytes a node might publish, and what Node's clients get from
// them; error when notepack.io refuses them. wtf8 marks ill-formed UTF-8
// that the Go side reads as surrogates (its own encoding of them).
const packs = [
  ["undefined", "d40000"],
  ["undefined in array", "9301d4000002"],
  ["undefined member", "82a161d40000a16201"],
  ["repeated key, undefined last", "83a16101a16202a161d40000"],
  ["repeated key", "83a16101a16202a16103"],
  ["repeated key, undefined first", "83a161d40000a16202a16103"],
  ["number keys", "84a162010202a13103cb3ff800000000000004"],
  ["negative and big keys", "83ff01cf000000010000000002cb000000000000000103"],
  ["literal keys", "84c001c302c203d4000004"],
  ["float32", "93ca3dcccccdca7f800000ca7fc00000"],
  ["float64 specials", "94cb7ff8000000000000cb7ff0000000000000cbfff0000000000000cb8000000000000000"],
  ["float64 formats", "95cb444b1ae4d6e2ef50cb3ea0c6f7a0b5ed8dcb3e7ad7f29abcaf48cb3eb4f8b588e368f1cb3c9e4e7c25c3e7b3"],
  ["uint64 max", "cfffffffffffffffff"],
  ["int64 min", "d38000000000000000"],
  ["int64 -1", "d3ffffffffffffffff"],
  ["timestamp 32", "d6ff6553f100"],
  ["timestamp 64", "d7ff1d4b5f406553f100"],
  ["timestamp 64 max ns", "d7ffee6b27fc6553f100"],
  ["timestamp 96", "c70cff075bca00000000006553f100"],
  ["timestamp 96 negative", "c70cff00000000ffffffffffffffff"],
  ["timestamp 96 year 0", "c70cff00000000fffffff1886e0900"],
  ["timestamp 96 out of range", "c70cff000000000000ffffffffffff"],
  ["old date", "d700000001000000ffff"],
  ["old date negative", "d700ffffffffffffff00"],
  ["ext 8", "c70307010203"],
  ["ext fixed", "95d4050ad50502ffd605aabbccddd7050102030405060708d805000102030405060708090a0b0c0d0e0f"],
  ["ext negative", "d6feaabbccdd"],
  ["fixext 1 type 0 in map", "81a178d40007"],
  ["arraybuffer", "c703000a0b0c"],
  ["arraybuffer 16", "c8000200aabb"],
  ["bin in map", "82a162c4020102a163c5000103"],
  ["repeated binary key", "83a130c40130a131c40132a130c40131"],
  ["binary reordered", "83a162c40161a131c40162a161d40000"],
  ["invalid utf8", "a3fffe41"],
  ["truncated utf8", "a3e28241"],
  ["overlong", "a2c080"],
  ["beyond unicode", "a4f4908080"],
  ["truncated 4 bytes", "a4f0908041"],
  ["utf8 valid mix", "a9c3a9e29c93f09f9880"],
  ["lone surrogate", "a4eda08078", { wtf8: true }],
  ["surrogate pair", "a6eda0bdedb880", { wtf8: true }],
  ["str8 controls", "d9061f0a22e280a8"],
  ["deep", "919191919191919191919101"],
  ["nil", "c0"],
  ["reserved", "c1", { error: true }],
  ["truncated", "92a161", { error: true }],
  ["truncated str", "a5616263", { error: true }],
  ["trailing", "c0c0", { error: true }],
  ["huge array", "ddffffffff", { error: true }],
];
for (const [name, hex, flags = {}] of packs) {
  const entry = { name, hex, ...flags };
  try {
    entry.client = toClient(["m", msgpack.decode(Buffer.from(hex, "hex"))]);
    if (flags.error) throw new Error(`${name}: notepack.io accepted it`);
  } catch (err) {
    if (!flags.error) throw new Error(`${name}: ${err.message}`);
  }
  out.msgpack.push(entry);
}

writeFileSync(new URL("./node-transcode.json", import.meta.url), JSON.stringify(out, null, 1) + "\n");
