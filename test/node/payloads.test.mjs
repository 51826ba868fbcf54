// Payload fidelity on each transport mode: whatever the first argument of
// user-message is (every JSON type, binary, binary nested in objects and
// arrays), every client gets it back unchanged as the argument of "message".
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { serverTest } from "../lib/server.mjs";
import { MODES, connectMany } from "../lib/client.mjs";

const blob = randomBytes(16 * 1024);

// cases are sent in this order; want is the value received (default: sent).
const cases = [
  { name: "string", sent: "hello, world" },
  { name: "empty string", sent: "" },
  { name: "unicode string", sent: "héllo wörld — 你好 — 🎉👩‍👩‍👧 \u2028\u2029" },
  { name: "string with JSON syntax and escapes", sent: '{"a":1} [1,2] "quoted" \\ back\\slash \n\t\r \u0000 \u001f' },
  { name: "string that looks like a packet", sent: '42["message","spoof"]' },
  { name: "long string", sent: "x".repeat(20_000) },
  { name: "integer", sent: 42 },
  { name: "zero", sent: 0 },
  { name: "negative number", sent: -17 },
  { name: "fraction", sent: 3.141592653589793 },
  { name: "small exponent", sent: 1e-7 },
  { name: "large exponent", sent: -1.5e300 },
  { name: "2^53 - 1", sent: Number.MAX_SAFE_INTEGER },
  { name: "1e21", sent: 1e21 },
  { name: "true", sent: true },
  { name: "false", sent: false },
  { name: "null", sent: null },
  { name: "empty object", sent: {} },
  { name: "object", sent: { user: "ana", text: "hi", n: 1, ok: true, none: null } },
  { name: "object with non-ASCII and odd keys", sent: { "clé": "v", "": "empty key", "a.b": 1, "_placeholder": false } },
  { name: "empty array", sent: [] },
  { name: "array of every type", sent: ["a", 1, 2.5, true, false, null, {}, [], { k: [1, { z: "deep" }] }] },
  {
    name: "nested",
    sent: { a: { b: { c: { d: { e: { f: [1, [2, [3, [4, [5, { g: "bottom" }]]]]] } } } } }, list: [{ x: 1 }, { y: [true, null] }] },
  },
  { name: "Buffer", sent: Buffer.from([0, 1, 2, 127, 128, 254, 255]) },
  { name: "empty Buffer", sent: Buffer.alloc(0) },
  { name: "Uint8Array", sent: new Uint8Array([9, 8, 7, 0, 255]) },
  { name: "16 KiB random binary", sent: blob },
  { name: "binary nested in an object", sent: { name: "file.bin", size: 3, data: Buffer.from([1, 2, 3]), meta: { thumb: new Uint8Array([4, 5]) } } },
  { name: "binary in an array", sent: [Buffer.from("first"), "between", { b: Buffer.from([0]) }, Buffer.from("last")] },
];

// normalize turns every binary value (Buffer, Uint8Array, ArrayBuffer) into a
// Buffer, so that sent and received values compare by content.
function normalize(v) {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}

for (const mode of MODES) {
  serverTest(`[${mode.name}] every JSON type and binary comes back unchanged`, {}, async (t, srv) => {
    const [sender, other] = await connectMany(srv, mode, 2);
    for (const c of cases) sender.socket.emit("user-message", c.sent);
    await Promise.all([sender.inbox.waitForCount(cases.length), other.inbox.waitForCount(cases.length)]);

    for (const [who, { inbox }] of [["sender", sender], ["other client", other]]) {
      assert.equal(inbox.messages.length, cases.length, `${who} message count`);
      for (const [i, c] of cases.entries()) {
        const args = inbox.messages[i];
        assert.equal(args.length, 1, `${who}, ${c.name}: one argument`);
        const got = args[0];
        assert.deepStrictEqual(normalize(got), normalize(c.sent), `${who}, ${c.name}`);
        if (c.sent instanceof Uint8Array) {
          assert.ok(Buffer.isBuffer(got), `${who}, ${c.name}: binary arrives as a Buffer, got ${Object.prototype.toString.call(got)}`);
        }
      }
    }
  });
}

// With -recovery every broadcast goes through the library's session-aware
// adapter, which appends the offset: the payload is still unchanged.
serverTest("[websocket] with -recovery 2m every payload comes back unchanged, followed by its offset",
  { flags: ["-recovery", "2m"] }, async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const [sender, other] = await connectMany(srv, mode, 2);
    for (const c of cases) sender.socket.emit("user-message", c.sent);
    await Promise.all([sender.inbox.waitForCount(cases.length), other.inbox.waitForCount(cases.length)]);
    for (const [who, { inbox }] of [["sender", sender], ["other client", other]]) {
      for (const [i, c] of cases.entries()) {
        const args = inbox.messages[i];
        assert.equal(args.length, 2, `${who}, ${c.name}: the value and its offset`);
        assert.equal(typeof args[1], "string", `${who}, ${c.name}: offset`);
        assert.deepStrictEqual(normalize(args[0]), normalize(c.sent), `${who}, ${c.name}`);
      }
    }
  });

// Node's server re-emits the object it parsed, so keys keep the sender's
// order. The Go library would decode objects into map[string]any and
// re-encode them with sorted keys; parser.go keeps event arguments as the
// client's JSON instead.
serverTest("[websocket] object keys keep the sender's order, as with Node",
  {}, async (t, srv) => {
    const mode = MODES.find((m) => m.name === "websocket");
    const [sender] = await connectMany(srv, mode, 1);
    const sent = { zeta: 1, alpha: 2, mid: { y: 1, b: 2 } };
    sender.socket.emit("user-message", sent);
    await sender.inbox.waitForCount(1);
    assert.equal(JSON.stringify(sender.inbox.first[0]), JSON.stringify(sent));
  });
