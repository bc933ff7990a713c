import assert from "node:assert/strict";
import { createLogger } from "../../relay/log.ts";
import {
  BACKOFF_MAX_MS,
  BACKOFF_MIN_MS,
  classifyLoopError,
  LOG_INTERVAL_MS,
  LoopGuard,
} from "../../relay/loop_errors.ts";
import { describeFileLimit, parseFileLimit } from "../../relay/file_limit.ts";
import { serveConnections } from "../../relay/service.ts";
import { silentLogger } from "../../relay/log.ts";
import { waitFor } from "../e2e/_harness.ts";

const emfile = () => new Error("Too many open files (os error 24)");
const enfile = () => new Error("Too many open files in system (os error 23)");
const enobufs = () => new Error("No buffer space available (os error 105)");

Deno.test("accept errors are sorted into peer, resource, closed and unknown", () => {
  assert.equal(classifyLoopError(new Deno.errors.NotConnected("x (os error 107)")), "peer");
  assert.equal(classifyLoopError(new Deno.errors.ConnectionReset("x")), "peer");
  assert.equal(classifyLoopError(new Deno.errors.ConnectionAborted("x")), "peer");
  assert.equal(classifyLoopError(new Error("Protocol error (os error 71)")), "peer");
  assert.equal(classifyLoopError(new Error("Software caused abort (os error 103)")), "peer");
  assert.equal(classifyLoopError(emfile()), "resource");
  assert.equal(classifyLoopError(enfile()), "resource");
  assert.equal(classifyLoopError(enobufs()), "resource");
  assert.equal(classifyLoopError(new Error("Cannot allocate memory (os error 12)")), "resource");
  assert.equal(classifyLoopError(new Deno.errors.BadResource("closed")), "closed");
  assert.equal(classifyLoopError(new Deno.errors.Interrupted("closed")), "closed");
  assert.equal(classifyLoopError(new Error("something new")), "unknown");
});

/** A guard with a fake clock; its pauses are recorded instead of waited. */
function fakeGuard(signal = new AbortController().signal) {
  const sleeps: number[] = [];
  const lines: string[] = [];
  let now = 0;
  const guard = new LoopGuard({
    name: "test accept",
    logger: createLogger("debug", (line) => lines.push(line)),
    signal,
    hint: "file limit 256",
    now: () => now,
    // Records the pause without waiting or moving the clock: only `advance` moves time.
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  return { guard, sleeps, lines, advance: (ms: number) => now += ms };
}

Deno.test("a peer error is skipped at once and counted", async () => {
  const { guard, sleeps } = fakeGuard();
  for (let i = 0; i < 1000; i++) {
    assert.equal(await guard.failed(new Deno.errors.NotConnected("(os error 107)")), true);
  }
  assert.deepEqual(sleeps, []);
  assert.deepEqual(guard.counts, { peer: 1000, resource: 0 });
});

Deno.test("resource errors back off, doubling to a bound, and a success starts over", async () => {
  const { guard, sleeps } = fakeGuard();
  for (let i = 0; i < 12; i++) assert.equal(await guard.failed(emfile()), true);
  assert.equal(sleeps[0], BACKOFF_MIN_MS);
  assert.equal(sleeps[1], BACKOFF_MIN_MS * 2);
  assert.ok(sleeps.every((ms, i) => i === 0 || ms >= sleeps[i - 1]!), `${sleeps}`);
  assert.equal(sleeps.at(-1), BACKOFF_MAX_MS);
  guard.succeeded();
  await guard.failed(emfile());
  assert.equal(sleeps.at(-1), BACKOFF_MIN_MS);
  assert.deepEqual(guard.counts, { peer: 0, resource: 13 });
});

Deno.test("an unknown error is waited out like a resource error, never ends the loop", async () => {
  const { guard, sleeps } = fakeGuard();
  assert.equal(await guard.failed(new Error("something new")), true);
  assert.deepEqual(sleeps, [BACKOFF_MIN_MS]);
});

Deno.test("resource warnings are throttled to one line per interval, with a count", async () => {
  const { guard, lines, advance } = fakeGuard();
  for (let i = 0; i < 50; i++) await guard.failed(emfile());
  const warnings = () => lines.filter((line) => line.includes(" WARN "));
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0]!, /test accept: Too many open files \(os error 24\); pausing 5 ms/);
  assert.match(warnings()[0]!, /file limit 256/);
  advance(LOG_INTERVAL_MS);
  await guard.failed(emfile());
  assert.equal(warnings().length, 2);
  assert.match(warnings()[1]!, /\(and \d+ more since the last line\)/);
});

Deno.test("only the owner's closing ends the loop; a pause ends at once on close", async () => {
  const owner = new AbortController();
  const guard = new LoopGuard({ name: "t", logger: silentLogger, signal: owner.signal });
  // A real (abortable) sleep: the first pause is short, so let the backoff grow first.
  const failing = (async () => {
    for (let i = 0; i < 10_000; i++) {
      if (!(await guard.failed(emfile()))) return i;
    }
    return -1;
  })();
  setTimeout(() => owner.abort(), 50);
  const started = performance.now();
  const rounds = await failing;
  assert.ok(rounds > 0 && rounds < 10_000, `rounds ${rounds}`);
  assert.ok(performance.now() - started < BACKOFF_MAX_MS, "the pause did not end on close");
  assert.equal(await guard.failed(emfile()), false);
});

Deno.test("a socket closed by someone else ends the loop with an error line", async () => {
  const lines: string[] = [];
  const guard = new LoopGuard({
    name: "t",
    logger: createLogger("error", (line) => lines.push(line)),
    signal: new AbortController().signal,
  });
  assert.equal(await guard.failed(new Deno.errors.BadResource("Bad resource ID")), false);
  assert.match(lines[0] ?? "", /ERROR t: socket closed unexpectedly/);
});

/**
 * A listener whose `accept` fails with each given error in turn before handing out real
 * connections from an inner listener: every error an accept loop can meet, on demand.
 */
function listenerFailingWith(inner: Deno.TcpListener, errors: Error[]): Deno.TcpListener {
  return new Proxy(inner, {
    get(target, key) {
      if (key === "accept") {
        return () => {
          const error = errors.shift();
          return error ? Promise.reject(error) : target.accept();
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("the accept loop serves the next client after every kind of accept error", async () => {
  const inner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const errors = [
    new Deno.errors.NotConnected("Transport endpoint is not connected (os error 107)"),
    new Deno.errors.ConnectionAborted("Software caused connection abort (os error 103)"),
    emfile(),
    enfile(),
    enobufs(),
    new Error("Protocol error (os error 71)"),
    new Error("an error nobody has seen"),
  ];
  const service = serveConnections(
    listenerFailingWith(inner, errors),
    async (conn) => {
      await conn.write(new Uint8Array([42]));
      return "OK";
    },
    { name: "t", logger: silentLogger, graceMs: 0 },
  );
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: service.addr.port });
    const byte = new Uint8Array(1);
    assert.equal(await conn.read(byte), 1);
    assert.equal(byte[0], 42);
    conn.close();
    assert.deepEqual(service.stats.acceptErrors, { peer: 3, resource: 4 });
  } finally {
    await service.close();
  }
});

Deno.test("closing a service ends an accept loop that is pausing after resource errors", async () => {
  const inner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const errors = Array.from({ length: 20 }, emfile);
  const service = serveConnections(
    listenerFailingWith(inner, errors),
    () => Promise.resolve("OK"),
    {
      name: "t",
      logger: silentLogger,
      graceMs: 0,
    },
  );
  // Let the backoff reach a long pause, then close: close must not wait it out.
  await waitFor(() => service.stats.acceptErrors.resource >= 8, 5000, "eight accept pauses");
  const started = performance.now();
  await service.close();
  assert.ok(performance.now() - started < 200, "close waited for the pause");
});

Deno.test("the file limit is read from /proc/self/limits and turned into a session count", () => {
  const text = "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max processes             95446                95446                processes \n" +
    "Max open files            1024                 524288               files     \n";
  assert.deepEqual(parseFileLimit(text), { soft: 1024, hard: 524288 });
  assert.equal(parseFileLimit("nothing here"), undefined);
  assert.match(describeFileLimit({ soft: 1024, hard: 524288 }), /file limit 1024 .*about 496 TCP/);
  assert.equal(describeFileLimit(undefined), "file limit unknown");
  assert.deepEqual(
    parseFileLimit("Max open files            unlimited            unlimited            files"),
    { soft: Infinity, hard: Infinity },
  );
});
