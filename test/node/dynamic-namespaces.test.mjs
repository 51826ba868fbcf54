// Dynamic namespaces from socket.io-client 4.8: the small Go server
// test/dynamicns (socketio.Server.OfRegexp(`^/room-\d+$`), Node's
// io.of(/^\/room-\d+$/)) creates /room-1 and /room-2 on their first
// CONNECT, refuses /lobby as Node does, and a broadcast of the parent
// reaches both rooms; on every transport mode.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { io } from "socket.io-client";
import { repoRoot, withDeadline } from "../lib/server.mjs";
import { MODES } from "../lib/client.mjs";

const deadlineMs = 5_000;
let server;
let url;

before(async () => {
  const bin = path.join(mkdtempSync(path.join(os.tmpdir(), "dynamicns-")), "dynamicns");
  execFileSync("go", ["build", "-o", bin, "./test/dynamicns"], { cwd: repoRoot, stdio: "inherit" });
  server = spawn(bin, [], { stdio: ["ignore", "pipe", "inherit"] });
  url = await withDeadline(new Promise((resolve, reject) => {
    let buf = "";
    server.stdout.on("data", (chunk) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)).url);
    });
    server.on("exit", (code) => reject(new Error(`dynamicns exited with ${code}`)));
  }), 60_000, "the dynamicns server to start");
});

after(async () => {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.on("exit", resolve));
  server.kill("SIGTERM");
  await withDeadline(exited, deadlineMs, "the dynamicns server to shut down");
});

function open(nsp, options) {
  const socket = io(url + nsp, { forceNew: true, reconnection: false, ...options });
  return socket;
}

function connected(socket) {
  return withDeadline(new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  }), deadlineMs, `CONNECT to ${socket.nsp}`);
}

for (const mode of MODES) {
  test(`[${mode.name}] /room-1 and /room-2 are created on connection; /lobby is invalid; the parent's broadcast reaches both`, async (t) => {
    const r1 = open("/room-1", mode.options);
    const r2 = open("/room-2", mode.options);
    const lobby = open("/lobby", mode.options);
    const refused = withDeadline(new Promise((resolve) => lobby.on("connect_error", resolve)), deadlineMs, "/lobby refused");
    t.after(() => [r1, r2, lobby].forEach((s) => s.disconnect()));
    await Promise.all([connected(r1), connected(r2)]);
    assert.equal((await refused).message, "Invalid namespace");

    assert.equal(await r1.timeout(deadlineMs).emitWithAck("whoami"), "/room-1");
    assert.equal(await r2.timeout(deadlineMs).emitWithAck("whoami"), "/room-2");

    const news = (s) => withDeadline(new Promise((resolve) => s.once("news", (...args) => resolve(args))), deadlineMs, `news on ${s.nsp}`);
    const got = Promise.all([news(r1), news(r2)]);
    r1.emit("shout", { n: 1 });
    assert.deepEqual(await got, [["/room-1", { n: 1 }], ["/room-1", { n: 1 }]]);
  });
}
