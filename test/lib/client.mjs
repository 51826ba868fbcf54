// socket.io-client 4.8 helpers for the Node compatibility tests: the three
// transport modes, connecting with a deadline, and an inbox of "message"
// events that tests wait on.
import { io } from "socket.io-client";
import { withDeadline } from "./server.mjs";

// MODES are the transport modes every test runs on. engineAtConnect is the
// Engine.IO transport when "connect" fires; final is the transport in use
// once the connection has settled.
export const MODES = [
  { name: "polling", options: { transports: ["polling"] }, engineAtConnect: "polling", final: "polling" },
  { name: "websocket", options: { transports: ["websocket"] }, engineAtConnect: "websocket", final: "websocket" },
  { name: "upgrade", options: { transports: ["polling", "websocket"], upgrade: true }, engineAtConnect: "polling", final: "websocket" },
];

export const connectDeadlineMs = 5_000;

// Inbox records the arguments of every "message" event of one socket.
export class Inbox {
  constructor(socket) {
    this.socket = socket;
    this.messages = []; // each entry is the array of arguments of one event
    this.waiters = new Set();
    socket.on("message", (...args) => {
      this.messages.push(args);
      for (const w of this.waiters) w();
    });
  }

  // first is the first argument of every message received, in order.
  get first() {
    return this.messages.map((args) => args[0]);
  }

  // waitUntil resolves once pred(this) is true, or rejects after ms.
  waitUntil(pred, ms, what) {
    let check;
    const p = new Promise((resolve) => {
      check = () => {
        if (pred(this)) resolve();
      };
      this.waiters.add(check);
      check();
    });
    return withDeadline(p, ms, what).finally(() => this.waiters.delete(check));
  }

  // waitForCount resolves once at least n messages have arrived.
  waitForCount(n, ms = 5_000) {
    return this.waitUntil((b) => b.messages.length >= n, ms, `${n} messages`)
      .catch((err) => {
        err.message += ` — got ${this.messages.length}: ${preview(this.first)}`;
        throw err;
      });
  }
}

function preview(list) {
  const s = JSON.stringify(list.slice(-10));
  return s.length > 400 ? `${s.slice(0, 400)}…` : s;
}

// connect opens a socket.io-client to srv with mode's transports plus
// options, waits for "connect" and registers the socket to be closed before
// the server stops. Reconnection is off unless options turn it on.
export async function connect(srv, mode, options = {}) {
  const socket = io(srv.url, {
    forceNew: true,
    reconnection: false,
    timeout: connectDeadlineMs,
    ...mode.options,
    ...options,
  });
  srv.defer(() => socket.disconnect());
  const inbox = new Inbox(socket);
  // The first Engine.IO connection: its transport when it opened, and the
  // transport it upgraded to, if any.
  const engine = { openedOn: "", upgradedTo: "" };
  socket.io.engine.once("open", () => {
    engine.openedOn = socket.io.engine.transport.name;
  });
  socket.io.engine.once("upgrade", (transport) => {
    engine.upgradedTo = transport.name;
  });
  await withDeadline(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error (${mode.name}): ${err.message}`)));
    }),
    connectDeadlineMs,
    `a ${mode.name} client to connect`,
  );
  return { socket, inbox, engine };
}

// connectMany connects n clients at once.
export function connectMany(srv, mode, n, options = {}) {
  return Promise.all(Array.from({ length: n }, () => connect(srv, mode, options)));
}

// transportName is the Engine.IO transport the socket uses now.
export function transportName(socket) {
  return socket.io.engine.transport.name;
}

// waitForUpgrade resolves once the socket's Engine.IO connection runs on
// WebSocket, waiting for the engine's "upgrade" event if needed.
export function waitForUpgrade(socket, ms = 5_000) {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return Promise.resolve();
  return withDeadline(
    new Promise((resolve, reject) => {
      engine.once("upgrade", () => resolve());
      engine.once("upgradeError", (err) => reject(new Error(`upgradeError: ${err.message}`)));
    }),
    ms,
    "the polling → websocket upgrade",
  );
}

// dropTransport cuts the socket's connection the way a network failure
// would, without telling the server: a WebSocket's TCP connection is
// destroyed; a polling connection, which has no single TCP connection to cut,
// is closed by the engine. Either way the Manager sees the transport close
// and reconnects if reconnection is on.
export function dropTransport(socket) {
  const engine = socket.io.engine;
  const ws = engine.transport.ws;
  if (engine.transport.name === "websocket" && ws && ws._socket) {
    ws._socket.destroy();
  } else {
    engine.close();
  }
}

// waitForEvent resolves with the arguments of emitter's next event.
export function waitForEvent(emitter, event, ms = 5_000) {
  return withDeadline(new Promise((resolve) => emitter.once(event, (...args) => resolve(args))), ms, `event "${event}"`);
}
