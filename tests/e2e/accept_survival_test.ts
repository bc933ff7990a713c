/**
 * Every listener keeps accepting after what the internet does to it all day (issue 14): a client
 * that resets before the process accepts it (`accept` fails with "not connected"), and a moment
 * with no file descriptors left (`accept` fails with "too many open files"). Before the fix either
 * ended the accept loop for good: the port stayed bound and every later client hung.
 *
 * Each role runs as `main.ts` in a subprocess, so that it can be stopped with SIGSTOP (which holds
 * its accept loop while a client connects and resets) or started under `ulimit -n 256`. The other
 * ends (our local, server and an echo target) run in this process.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { startLocal } from "../../local.ts";
import type { RunningService } from "../../relay/service.ts";
import { startServer } from "../../server.ts";
import { freePort, waitForTcpPort } from "../interop/_peers.ts";
import {
  type EchoServer,
  echoThrough,
  localConfig,
  localhostTarget,
  serverConfig,
  socksConnect,
  startEchoServer,
  waitFor,
} from "./_harness.ts";
import { spawnSsdeno } from "./_ssdeno_process.ts";

const METHOD = "aes-128-gcm";
const PASSWORD = "e2e-password";
/** New sessions after the attack, and how long they all get to be served. */
const SESSIONS_AFTER = 20;
const SERVE_WITHIN_MS = 5000;
/** The flood: more connections at once than the process has descriptors. */
const FILE_LIMIT = 256;
const FLOOD = 600;
/** Resets until one has made `accept` fail: 1 in 5 comes out of accept alive instead. */
const RESET_ATTEMPTS = 10;

type Role = "server" | "local" | "tunnel";

/** One role under test in a subprocess, with the in-process ends a session through it needs. */
interface Setup {
  /** Arguments for `main.ts` to listen on 127.0.0.1:`port`. */
  args(port: number): string[];
  /** Runs one session through the role's port; resolves once the echo came back whole. */
  session(port: number, seed: number): Promise<void>;
  close(): Promise<void>;
}

async function setUp(role: Role): Promise<Setup> {
  const echo: EchoServer = startEchoServer();
  const common = ["-k", PASSWORD, "-m", METHOD];
  if (role === "server") {
    // Our local in this process, pointed at the server under test once its port is known.
    const locals = new Map<number, RunningService>();
    return {
      args: (
        port,
      ) => ["server", "-s", "127.0.0.1", "-p", `${port}`, ...common, "--allow-private-targets"],
      async session(port, seed) {
        let local = locals.get(port);
        if (!local) {
          local = await startLocal(localConfig(METHOD, port), { graceMs: 0 });
          locals.set(port, local);
        }
        const { conn, reply } = await socksConnect(local.addr.port, localhostTarget(echo.port));
        assert.equal(reply, 0);
        await echoThrough(conn, 4096, seed);
      },
      async close() {
        for (const local of locals.values()) await local.close();
        await echo.close();
      },
    };
  }
  const server = await startServer(serverConfig(METHOD), { graceMs: 0 });
  const upstream = ["-s", "127.0.0.1", "-p", `${server.addr.port}`, ...common];
  const close = async () => {
    await server.close();
    await echo.close();
  };
  if (role === "local") {
    return {
      args: (port) => ["local", ...upstream, "-b", "127.0.0.1", "-l", `${port}`],
      async session(port, seed) {
        const { conn, reply } = await socksConnect(port, localhostTarget(echo.port));
        assert.equal(reply, 0);
        await echoThrough(conn, 4096, seed);
      },
      close,
    };
  }
  return {
    args: (port) => [
      "tunnel",
      ...upstream,
      ...["-b", "127.0.0.1", "-l", `${port}`, "-L", `127.0.0.1:${echo.port}`],
    ],
    async session(port, seed) {
      await echoThrough(await Deno.connect({ hostname: "127.0.0.1", port }), 4096, seed);
    },
    close,
  };
}

/** `main.ts` in a subprocess (under `ulimit -n` when `fileLimit` is given), once it listens. */
async function spawnRole(args: string[], port: number, fileLimit?: number) {
  const child = spawnSsdeno(args, fileLimit === undefined ? {} : { fileLimit });
  try {
    await waitForTcpPort(port, { exited: child.status });
  } catch (error) {
    await child.close();
    throw new Error(`${args[0]} did not start:\n${child.log()}`, { cause: error });
  }
  return { pid: child.pid, log: child.log, stop: child.close };
}

/**
 * Descriptors the process has open now (Linux). Listed by `ls`: Deno asks for --allow-all to
 * read another process's `/proc/PID/fd`.
 */
async function openDescriptors(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${pid}/fd`], stdout: "piped" })
    .output();
  return new TextDecoder().decode(stdout).split("\n").filter(Boolean).length;
}

/**
 * Runs `SESSIONS_AFTER` sessions at once; fails unless all are served within `withinMs`
 * (default: the limit).
 */
async function assertServesNewSessions(
  setup: Setup,
  port: number,
  log: () => string,
  withinMs = SERVE_WITHIN_MS,
) {
  let served = 0;
  const sessions = Promise.all(
    Array.from(
      { length: SESSIONS_AFTER },
      (_, i) => setup.session(port, i + 1).then(() => served++),
    ),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), withinMs);
  });
  const result = await Promise.race([sessions, deadline]).catch((error) => {
    throw new Error(`A new session failed: ${error}\n${log()}`, { cause: error });
  });
  clearTimeout(timer);
  if (result === "late") {
    // Sessions still hanging in the kernel's queue: the test fails, and the process is killed
    // by the caller, which ends them.
    sessions.catch(() => {});
    assert.fail(
      `${served} of ${SESSIONS_AFTER} new sessions served within ${SERVE_WITHIN_MS} ms\n${log()}`,
    );
  }
}

/**
 * Connects and resets (SO_LINGER 0) before the stopped process can accept. Returns once the kernel
 * holds neither end any more: node's `close` event can come before the descriptor is really
 * closed, and a reset that reaches the kernel only after SIGCONT lets the process accept a live
 * connection (then its first read fails instead of the accept).
 */
async function connectAndReset(port: number): Promise<number> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const clientPort = socket.localPort!;
  socket.resetAndDestroy();
  await new Promise((resolve) => socket.once("close", resolve));
  let left = "";
  await waitFor(
    async () => (left = (await tcpSocketsBetween(clientPort, port)).trim()) === "",
    5000,
    `the reset of 127.0.0.1:${clientPort} to reach the kernel`,
  ).catch((error) => {
    throw new Error(`${error.message}; still there:\n${left}`, { cause: error });
  });
  return clientPort;
}

/** How many accepts failed on a reset connection, by the process's log (`-v`). */
function acceptFailures(log: string): number {
  return log.match(/accept: skipped: .*\(os error 107\)/g)?.length ?? 0;
}

/**
 * `ss`'s lines for the TCP connection between 127.0.0.1 ports `a` and `b`, either end (a stale
 * TIME-WAIT from an earlier test may share the ephemeral port, not the pair).
 */
async function tcpSocketsBetween(a: number, b: number): Promise<string> {
  const filter = `( sport = :${a} and dport = :${b} ) or ( sport = :${b} and dport = :${a} )`;
  const { stdout } = await new Deno.Command("ss", { args: ["-Htan", filter], stdout: "piped" })
    .output();
  return new TextDecoder().decode(stdout);
}

for (const role of ["server", "local", "tunnel"] as const) {
  Deno.test(`${role}: a client that resets before accept does not stop the accept loop`, async () => {
    const setup = await setUp(role);
    const port = freePort();
    const process = await spawnRole([...setup.args(port), "-v"], port);
    try {
      // Linux hands most such connections to `accept` as closed sockets, whose peer address
      // then fails with ENOTCONN (os error 107): the path this test is about. Some come out of
      // `accept` alive and fail at the first read instead (seen 4 times in 20), so the client
      // resets again until one accept has failed, each time once the process has dealt with it.
      let failedAccepts = 0;
      for (let attempt = 1; failedAccepts === 0; attempt++) {
        const before = acceptFailures(process.log());
        Deno.kill(process.pid, "SIGSTOP");
        const clientPort = await connectAndReset(port);
        Deno.kill(process.pid, "SIGCONT");
        await waitFor(
          () =>
            acceptFailures(process.log()) > before ||
            process.log().includes(`127.0.0.1:${clientPort} `),
          5000,
          `the process to see the reset of client port ${clientPort}`,
        ).catch((error) => {
          throw new Error(`${error.message}\n${process.log()}`, { cause: error });
        });
        failedAccepts = acceptFailures(process.log());
        if (failedAccepts === 0 && attempt === RESET_ATTEMPTS) {
          assert.fail(`No accept failed in ${RESET_ATTEMPTS} resets\n${process.log()}`);
        }
      }
      await assertServesNewSessions(setup, port, process.log);
    } finally {
      await process.stop();
      await setup.close();
    }
  });

  Deno.test(`${role}: running out of file descriptors pauses the accept loop, not ends it`, async () => {
    const setup = await setUp(role);
    const port = freePort();
    const process = await spawnRole([...setup.args(port), "-v"], port, FILE_LIMIT);
    const flood: Deno.TcpConn[] = [];
    try {
      const connecting = await Promise.allSettled(
        Array.from({ length: FLOOD }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      );
      for (const result of connecting) if (result.status === "fulfilled") flood.push(result.value);
      assert.equal(flood.length, FLOOD, "the kernel queues every flood connection");
      await waitFor(
        () => process.log().includes("Too many open files (os error 24)"),
        10_000,
        "the process to run out of descriptors",
      );
      for (const conn of flood.splice(0)) conn.close();
      // The process must notice the closes and release its descriptors (a tunnel holds two per
      // flood connection) before new sessions can open theirs: part of the same 5 s.
      const closed = performance.now();
      // Well below the limit: the backlog of flood connections has been drained too.
      while (await openDescriptors(process.pid) >= FILE_LIMIT / 4) {
        if (performance.now() - closed > SERVE_WITHIN_MS) {
          assert.fail(`The flood's descriptors were not released within 5 s\n${process.log()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const left = SERVE_WITHIN_MS - (performance.now() - closed);
      await assertServesNewSessions(setup, port, process.log, left);
      assert.match(process.log(), /file limit 256 \(hard 256\)/);
    } finally {
      for (const conn of flood) conn.close();
      await process.stop();
      await setup.close();
    }
  });
}
