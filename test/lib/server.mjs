// Starts the built Go server (./socketio-chat) for one test and stops it
// afterwards. The server listens on 127.0.0.1:0; its port is read from its
// JSON "Server started" log line. Its output is kept for failure diagnostics.
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const binary = path.join(repoRoot, "socketio-chat");

const startDeadlineMs = 10_000;
const shutdownGraceFlag = "2s"; // -shutdown-grace given to every test server
const stopDeadlineMs = 5_000; // SIGTERM, then SIGKILL after this

// ensureBinary builds ./socketio-chat when it is missing (scripts/test.sh
// always builds it first).
function ensureBinary() {
  if (!existsSync(binary)) {
    execFileSync("go", ["build", "-o", "socketio-chat", "."], { cwd: repoRoot, stdio: "inherit" });
  }
}

// Every server process still running, killed if this test process exits.
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

// withDeadline rejects with an error naming what was awaited when promise
// does not settle within ms.
export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// TestServer is one running ./socketio-chat process.
export class TestServer {
  constructor(child, args) {
    this.child = child;
    this.args = args;
    this.url = "";
    this.addr = "";
    this.port = 0;
    this.records = []; // parsed JSON log records, in order
    this.lines = []; // every stdout/stderr line, in order, for diagnostics
    this.cleanups = []; // run before the process is stopped (close clients)
    this.stopping = false;
    this.waiters = new Set();
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        running.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
        this.#notify();
      });
    });
  }

  // onLine records one line of the server's output.
  onLine(stream, line) {
    if (line === "") return;
    this.lines.push(`${stream}: ${line}`);
    if (stream === "stdout") {
      try {
        this.records.push(JSON.parse(line));
      } catch {
        // not JSON (a panic trace, a Go runtime message): kept in lines only
      }
    }
    this.#notify();
  }

  #notify() {
    for (const w of this.waiters) w();
  }

  // waitForLog resolves with the first log record for which match returns
  // true, waiting up to ms for it to be written.
  waitForLog(match, ms = 5_000, what = "a server log record") {
    let check;
    const p = new Promise((resolve, reject) => {
      check = () => {
        const r = this.records.find(match);
        if (r) resolve(r);
        else if (this.exit) reject(new Error(`server exited (${JSON.stringify(this.exit)}) before logging ${what}`));
      };
      this.waiters.add(check);
      check();
    });
    return withDeadline(p, ms, what).finally(() => this.waiters.delete(check));
  }

  // output is the server's output so far, for failure messages.
  output(lastLines = 80) {
    const lines = this.lines.slice(-lastLines);
    return `--- ./socketio-chat ${this.args.join(" ")} (last ${lines.length} lines) ---\n${lines.join("\n")}`;
  }

  // defer registers fn to run before the server is stopped (e.g. closing a client).
  defer(fn) {
    this.cleanups.push(fn);
  }

  // stop runs the cleanups, sends SIGTERM and waits for a clean exit; after
  // stopDeadlineMs it sends SIGKILL. It throws when the server died on its own
  // before, or did not exit 0 after SIGTERM. A second call does nothing.
  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // a client that fails to close must not keep the server running
      }
    }
    if (this.exit) {
      throw new Error(`server exited on its own during the test: ${JSON.stringify(this.exit)}\n${this.output()}`);
    }
    this.child.kill("SIGTERM");
    try {
      await withDeadline(this.exited, stopDeadlineMs, "the server to exit after SIGTERM");
    } catch (err) {
      this.child.kill("SIGKILL");
      await this.exited;
      throw new Error(`${err.message}; killed it\n${this.output()}`);
    }
    if (this.exit.code !== 0) {
      throw new Error(`server exited with ${JSON.stringify(this.exit)} after SIGTERM, want code 0\n${this.output()}`);
    }
  }
}

// startServer starts ./socketio-chat on 127.0.0.1:0 with extra flags and
// waits until it logs its address. The environment is cleared (only PATH and
// HOME are kept) so that no variable such as PORT or RECOVERY changes the
// server. It is stopped by an after hook of t.
export async function startServer(t, flags = []) {
  ensureBinary();
  const args = [
    "-addr", "127.0.0.1:0",
    "-log-format", "json",
    "-log-level", "debug",
    "-shutdown-grace", shutdownGraceFlag,
    ...flags,
  ];
  const child = spawn(binary, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  const srv = new TestServer(child, args);
  for (const stream of ["stdout", "stderr"]) {
    let buf = "";
    child[stream].setEncoding("utf8");
    child[stream].on("data", (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        srv.onLine(stream, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child[stream].on("end", () => srv.onLine(stream, buf));
  }
  const spawned = new Promise((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  t.after(async () => {
    if (t.signal.aborted) t.diagnostic(srv.output());
    await srv.stop();
  });
  await spawned;
  const started = await srv.waitForLog((r) => r.msg === "Server started", startDeadlineMs, '"Server started"')
    .catch((err) => {
      throw new Error(`${err.message}\n${srv.output()}`);
    });
  srv.addr = started.addr;
  srv.port = Number(started.addr.slice(started.addr.lastIndexOf(":") + 1));
  srv.url = `http://${srv.addr}`;
  return srv;
}

// serverTest is node:test's test() with a fresh server per test: fn(t, srv).
// A failure carries the server's output in its message.
// todo marks a test of a known, reported bug: it runs and reports, but its
// failure does not fail the run.
export function serverTest(name, { flags = [], timeout = 30_000, todo } = {}, fn) {
  test(name, { timeout, todo }, async (t) => {
    const srv = await startServer(t, flags);
    try {
      await fn(t, srv);
    } catch (err) {
      if (err && typeof err === "object" && typeof err.message === "string") {
        err.message += `\n${srv.output()}`;
      }
      throw err;
    }
  });
}
