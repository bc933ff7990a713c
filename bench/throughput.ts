/**
 * Side-by-side network benchmark: ssdeno against shadowsocks-libev, in one run, on loopback.
 *
 * ```
 * iperf3 -c ─▶ tunnel (ss-tunnel | ssdeno) ══AEAD══▶ server (ss-server | ssdeno) ─▶ iperf3 -s
 * ```
 *
 * Four measurements per method (the AEAD-2017 ones and the 2022 edition; in a 2022 row libev runs
 * the AEAD-2017 method of the same cipher), each repeated and reported as a median (with min–max):
 * - throughput: iperf3, 1 and 8 streams, upload (client → target) and download (`-R`), Gbit/s;
 * - idle memory: RSS growth of the server and the tunnel per connection held open end to end
 *   (each connection sends one byte and waits for its echo, so every hop exists), KiB;
 * - setup: wall time of N sequential short connections (connect, one byte, echo, close), ms;
 * - burst: wall time until N connections opened at once have all echoed one byte, ms (a
 *   listener whose accept queue overflows makes clients resend SYNs a second later).
 *
 * Until ssdeno has a tunnel command, its chain is "libev ss-tunnel → ssdeno server", which
 * measures the ssdeno server side only (the table says so).
 *
 * Run: `deno task bench:net [flags]`. Flags:
 *   --quick                 smoke test (CI): chacha20-ietf-poly1305, 1 s runs, 50 idle / 100
 *                           setup connections, 1 repeat; prints, writes no file unless --out
 *   --methods a,b           methods (default: all six, AEAD-2017 and 2022)
 *   --duration S            seconds per iperf3 run (default 5)
 *   --repeat N              repetitions of every case, chains interleaved (default 3)
 *   --idle N                idle connections for the memory test (default 1000)
 *   --setup N               sequential connections for the setup test (default 2000)
 *   --burst N               connections opened at once for the burst test (default 1000)
 *   --only list             throughput,memory,setup,burst (default all)
 *   --streams list          iperf3 parallel streams (default 1,8)
 *   --variant NAME=DIR[:K=V,K=V]  an ssdeno build (a directory holding main.ts) and environment;
 *                           repeatable; default "ssdeno" = this checkout. Used to compare levers.
 *   --no-libev              leave the libev chain out (lever comparisons between variants)
 *   --no-floor              leave out the `deno-fwd` chain: bench/forwarder.ts on both sides, a
 *                           plain Deno TCP forwarder (no protocol, no crypto), i.e. Deno's floor
 *   --out FILE              markdown output (default bench/results.md; none with --quick)
 *   --readme                also replace the block between <!-- bench:start --> and
 *                           <!-- bench:end --> in README.md
 *   --verbose               show the children's stderr
 *
 * Every child process is started here and ended here by its PID (SIGTERM, then SIGKILL after
 * 2 s), on success, on failure and on SIGINT/SIGTERM. Only 127.0.0.1 is used.
 * @module
 */

import { listenTcp } from "../relay/listen.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PASSWORD = "bench-password-not-secret";
const HOST = "127.0.0.1";
const ALL_METHODS = [
  "aes-128-gcm",
  "aes-256-gcm",
  "chacha20-ietf-poly1305",
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
];
/**
 * What libev runs in a method's row: libev has no 2022 edition, so a 2022 row compares with
 * libev's AEAD-2017 method of the same cipher.
 */
const LIBEV_METHOD: Record<string, string> = {
  "2022-blake3-aes-128-gcm": "aes-128-gcm",
  "2022-blake3-aes-256-gcm": "aes-256-gcm",
  "2022-blake3-chacha20-poly1305": "chacha20-ietf-poly1305",
};

/** ssdeno's `-k` for `method`: 2022 methods take a base64 key of the cipher's size. */
function ssdenoPassword(method: string): string {
  if (!method.startsWith("2022-")) return PASSWORD;
  const size = method === "2022-blake3-aes-128-gcm" ? 16 : 32;
  // A fixed, public benchmark key.
  return btoa(String.fromCharCode(...Array.from({ length: size }, (_, i) => (i * 37 + 11) & 0xff)));
}
const KILL_GRACE_MS = 2000;
const READY_TIMEOUT_MS = 15_000;
/** USER_HZ of /proc/PID/stat: 100 on Linux x86_64 and arm64 (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

interface Variant {
  name: string;
  dir: string;
  env: Record<string, string>;
  /** Runtime flags of the build's `deno task serve` (`--v8-flags=…`): ssdeno runs as users run it. */
  runtimeFlags: string[];
}

interface Options {
  quick: boolean;
  methods: string[];
  duration: number;
  repeat: number;
  idle: number;
  setup: number;
  burst: number;
  only: Set<string>;
  streams: number[];
  variants: Variant[];
  libev: boolean;
  floor: boolean;
  /** This checkout's runtime flags (`runtimeFlagsOf`), read once: the forwarder runs with them. */
  checkoutFlags: string[];
  out: string | undefined;
  readme: boolean;
  verbose: boolean;
}

function parseOptions(args: string[]): Options {
  const quick = args.includes("--quick");
  const options: Options = {
    quick,
    methods: quick ? ["chacha20-ietf-poly1305"] : ALL_METHODS,
    duration: quick ? 1 : 5,
    repeat: quick ? 1 : 3,
    idle: quick ? 50 : 1000,
    setup: quick ? 100 : 2000,
    burst: quick ? 100 : 1000,
    only: new Set(["throughput", "memory", "setup", "burst"]),
    streams: [1, 8],
    variants: [],
    libev: true,
    floor: true,
    checkoutFlags: runtimeFlagsOf(ROOT),
    out: quick ? undefined : `${ROOT}/bench/results.md`,
    readme: false,
    verbose: false,
  };
  const list = (value: string) => value.split(",").map((item) => item.trim()).filter(Boolean);
  const count = (flag: string, value: string, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new UsageError(`Invalid ${flag} "${value}": expected an integer of at least ${min}`);
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new UsageError(`Missing value after ${flag}`);
      return next;
    };
    switch (flag) {
      case "--quick":
        break;
      case "--methods":
        options.methods = list(value());
        break;
      case "--duration":
        options.duration = count(flag, value(), 1);
        break;
      case "--repeat":
        options.repeat = count(flag, value(), 1);
        break;
      case "--idle":
        options.idle = count(flag, value(), 1);
        break;
      case "--setup":
        options.setup = count(flag, value(), 1);
        break;
      case "--burst":
        options.burst = count(flag, value(), 1);
        break;
      case "--only":
        options.only = new Set(list(value()));
        break;
      case "--streams":
        options.streams = list(value()).map((s) => count(flag, s, 1));
        break;
      case "--variant":
        options.variants.push(parseVariant(value()));
        break;
      case "--no-libev":
        options.libev = false;
        break;
      case "--no-floor":
        options.floor = false;
        break;
      case "--out":
        options.out = value();
        break;
      case "--readme":
        options.readme = true;
        break;
      case "--verbose":
        options.verbose = true;
        break;
      default:
        throw new UsageError(
          `Unknown flag "${flag}": see the list at the top of bench/throughput.ts`,
        );
    }
  }
  for (const method of options.methods) {
    if (!ALL_METHODS.includes(method)) {
      throw new UsageError(`Invalid method "${method}": expected one of ${ALL_METHODS.join(", ")}`);
    }
  }
  for (const part of options.only) {
    if (!["throughput", "memory", "setup", "burst"].includes(part)) {
      throw new UsageError(
        `Invalid --only "${part}": expected throughput, memory, setup or burst`,
      );
    }
  }
  if (options.variants.length === 0) {
    options.variants.push({
      name: "ssdeno",
      dir: ROOT,
      env: {},
      runtimeFlags: options.checkoutFlags,
    });
  }
  return options;
}

/** `NAME=DIR[:K=V,K=V]` */
function parseVariant(text: string): Variant {
  const match = /^([\w.+-]+)=([^:]+)(?::(.*))?$/.exec(text);
  if (!match) throw new UsageError(`Invalid --variant "${text}": expected NAME=DIR[:K=V,...]`);
  const env: Record<string, string> = {};
  // A comma starts the next pair only before `NAME=`, so values such as DENO_V8_FLAGS keep theirs.
  for (const pair of (match[3] ?? "").split(/,(?=[A-Z_][A-Z0-9_]*=)/).filter(Boolean)) {
    const [key, ...rest] = pair.split("=");
    env[key!] = rest.join("=");
  }
  return { name: match[1]!, dir: match[2]!, env, runtimeFlags: runtimeFlagsOf(match[2]!) };
}

/**
 * The `--v8-flags=…` arguments of the `serve` task in `dir`/deno.json. The tasks carry the V8
 * settings ssdeno ships with (a small young generation: less memory per idle connection), so
 * the benchmark must start ssdeno with them too.
 */
function runtimeFlagsOf(dir: string): string[] {
  let config: { tasks?: Record<string, string> };
  try {
    config = JSON.parse(Deno.readTextFileSync(`${dir}/deno.json`));
  } catch (error) {
    throw new UsageError(
      `Cannot read ${dir}/deno.json: ${error instanceof Error ? error.message : error}`,
    );
  }
  const serve = config.tasks?.serve ?? "";
  return serve.split(/\s+/).filter((word) => word.startsWith("--v8-flags="));
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Child processes: started and ended only here, by PID.

interface Child {
  name: string;
  pid: number;
  process: Deno.ChildProcess;
}

const children = new Map<number, Child>();
/** iperf3 runs whose every try failed; reported under the tables. */
let failures = 0;

function spawn(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; verbose: boolean },
): Child {
  const process = new Deno.Command(command, {
    args,
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: options.verbose ? "inherit" : "null",
  }).spawn();
  const child = { name, pid: process.pid, process };
  children.set(process.pid, child);
  return child;
}

async function stop(child: Child): Promise<void> {
  if (!children.delete(child.pid)) return;
  const exited = child.process.status.then(() => true);
  try {
    Deno.kill(child.pid, "SIGTERM");
  } catch (error) {
    // Already exited: nothing to end.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const inTime = await Promise.race([exited, delay(KILL_GRACE_MS).then(() => false)]);
  if (!inTime) {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await child.process.status;
  }
}

async function stopAll(): Promise<void> {
  await Promise.all([...children.values()].map(stop));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when something listens on TCP `port` (from /proc/net/tcp; no connection is made). */
async function isListening(port: number): Promise<boolean> {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    for (const line of text.split("\n")) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(hexPort.trim()) && fields[3] === "0A") return true;
    }
  }
  return false;
}

async function waitListening(child: Child, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await isListening(port))) {
    if (!children.has(child.pid)) throw new Error(`${child.name} was stopped before listening`);
    const status = await Promise.race([child.process.status, delay(25).then(() => undefined)]);
    if (status) {
      throw new Error(`${child.name} exited with code ${status.code} before listening on ${port}`);
    }
    if (Date.now() > deadline) throw new Error(`${child.name} did not listen on ${port} in time`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** User + system CPU time of a process so far, in seconds (from /proc/PID/stat). */
async function readCpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

async function readRssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`No VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

// ---------------------------------------------------------------------------------------------
// Chains.

/** libev, an ssdeno build, or the plain Deno forwarder (bench/forwarder.ts): Deno's floor. */
type Impl = { kind: "libev" } | { kind: "ssdeno"; variant: Variant } | { kind: "forwarder" };

interface ChainSpec {
  label: string;
  server: Impl;
  tunnel: Impl;
}

interface RunningChain {
  spec: ChainSpec;
  server: Child;
  tunnel: Child;
  port: number;
}

async function supportsTunnel(variant: Variant): Promise<boolean> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "--help"],
    cwd: variant.dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return /^\s+tunnel\s/m.test(new TextDecoder().decode(stdout));
}

async function startChain(
  spec: ChainSpec,
  method: string,
  target: number,
  options: Options,
): Promise<RunningChain> {
  const serverPort = freePort();
  const server = startServerProcess(spec.server, method, serverPort, target, options);
  try {
    await waitListening(server, serverPort);
    const port = freePort();
    const tunnel = startTunnelProcess(spec.tunnel, method, serverPort, port, target, options);
    const chain = { spec, server, tunnel, port };
    try {
      await waitListening(tunnel, port);
    } catch (error) {
      await stop(tunnel);
      throw error;
    }
    return chain;
  } catch (error) {
    await stop(server);
    throw error;
  }
}

function startServerProcess(
  impl: Impl,
  method: string,
  port: number,
  target: number,
  options: Options,
): Child {
  const listen = ["-s", HOST, "-p", String(port)];
  if (impl.kind === "libev") {
    const libevMethod = LIBEV_METHOD[method] ?? method;
    const args = [...listen, "-k", PASSWORD, "-m", libevMethod, "--no-delay"];
    return spawn("ss-server", "ss-server", args, options);
  }
  const common = [...listen, "-k", ssdenoPassword(method), "-m", method];
  if (impl.kind === "forwarder") return startForwarder("forwarder server", port, target, options);
  return spawn(
    `${impl.variant.name} server`,
    Deno.execPath(),
    [
      "run",
      "-A",
      ...impl.variant.runtimeFlags,
      "main.ts",
      "server",
      ...common,
      "--allow-private-targets",
      "-q",
    ],
    { ...options, cwd: impl.variant.dir, env: impl.variant.env },
  );
}

function startTunnelProcess(
  impl: Impl,
  method: string,
  serverPort: number,
  port: number,
  target: number,
  options: Options,
): Child {
  const route = [
    ...["-s", HOST, "-p", String(serverPort), "-b", HOST, "-l", String(port)],
    ...["-L", `${HOST}:${target}`],
  ];
  if (impl.kind === "libev") {
    const libevMethod = LIBEV_METHOD[method] ?? method;
    const args = [...route, "-k", PASSWORD, "-m", libevMethod, "--no-delay"];
    return spawn("ss-tunnel", "ss-tunnel", args, options);
  }
  const common = [...route, "-k", ssdenoPassword(method), "-m", method];
  if (impl.kind === "forwarder") {
    return startForwarder("forwarder tunnel", port, serverPort, options);
  }
  return spawn(
    `${impl.variant.name} tunnel`,
    Deno.execPath(),
    ["run", "-A", ...impl.variant.runtimeFlags, "main.ts", "tunnel", ...common, "-q"],
    { ...options, cwd: impl.variant.dir, env: impl.variant.env },
  );
}

/** bench/forwarder.ts with this checkout's runtime flags, as ssdeno runs. */
function startForwarder(name: string, port: number, target: number, options: Options): Child {
  return spawn(name, Deno.execPath(), [
    "run",
    "--allow-net",
    ...options.checkoutFlags,
    `${ROOT}/bench/forwarder.ts`,
    String(port),
    String(target),
  ], options);
}

async function stopChain(chain: RunningChain): Promise<void> {
  await stop(chain.tunnel);
  await stop(chain.server);
}

// ---------------------------------------------------------------------------------------------
// Measurements.

/**
 * `iperf`, tried up to three times: the iperf3 server refuses a new test ("busy") while the
 * previous one is still closing through the chain. Undefined when every try failed.
 */
async function iperfWithRetry(
  port: number,
  streams: number,
  reverse: boolean,
  options: Options,
): Promise<{ gbps: number; bytes: number } | undefined> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await iperf(port, streams, reverse, options);
    } catch (error) {
      console.log(`  try ${attempt} failed: ${error instanceof Error ? error.message : error}`);
      await delay(1000 * attempt);
    }
  }
  failures++;
  return undefined;
}

/** One iperf3 client run through `port`: Gbit/s and bytes received. */
async function iperf(
  port: number,
  streams: number,
  reverse: boolean,
  options: Options,
): Promise<{ gbps: number; bytes: number }> {
  const args = ["-c", HOST, "-p", String(port), "-t", String(options.duration), "-J"];
  args.push("-P", String(streams), "--connect-timeout", "5000");
  if (options.duration >= 4) args.push("-O", "1");
  if (reverse) args.push("-R");
  const { stdout } = await new Deno.Command("iperf3", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout((options.duration + 20) * 1000),
  }).output();
  const text = new TextDecoder().decode(stdout);
  let report: {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
  };
  try {
    report = JSON.parse(text);
  } catch {
    throw new Error(`iperf3 printed no JSON report: ${text.slice(0, 200)}`);
  }
  const bits = report.end?.sum_received?.bits_per_second;
  const bytes = report.end?.sum_received?.bytes;
  if (report.error || bits === undefined || bytes === undefined) {
    throw new Error(`iperf3 failed: ${report.error ?? "no sum_received in its report"}`);
  }
  return { gbps: bits / 1e9, bytes };
}

/** An in-process echo server: the target for the memory and setup tests. */
/** The echo listens like ssdeno (a deep accept queue, relay/listen.ts): bursts never overflow it. */
function startEcho(): { port: number; close(): Promise<void> } {
  const listener = listenTcp(HOST, 0);
  const conns = new Set<Deno.Conn>();
  const sessions = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let written = 0;
        while (written < n) written += await conn.write(buffer.subarray(written, n));
      }
    } catch (error) {
      // A peer reset or our own close at shutdown ends the echo; anything else is a bug.
      if (
        !(error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe)
      ) throw error;
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const session = serve(conn);
      sessions.add(session);
      session.finally(() => sessions.delete(session));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) closeQuietly(conn);
      await accepting;
      await Promise.allSettled([...sessions]);
    },
  };
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** Connects through the chain and waits for the echo of one byte: every hop then exists. */
async function openEchoed(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    conn.setNoDelay(true);
    await conn.write(Uint8Array.of(0x2a));
    const reply = new Uint8Array(1);
    const n = await conn.read(reply);
    if (n !== 1 || reply[0] !== 0x2a) throw new Error("Echo through the chain failed");
    return conn;
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
}

interface MemoryResult {
  serverKiB: number;
  tunnelKiB: number;
}

/** RSS growth per idle connection held through the chain, server and tunnel side. */
async function measureIdle(chain: RunningChain, count: number): Promise<MemoryResult> {
  // Warm up: code paths, JIT and lazily loaded libraries are not per-connection memory.
  for (const conn of await openMany(chain.port, 20)) closeQuietly(conn);
  await delay(500);
  const serverBefore = await readRssKiB(chain.server.pid);
  const tunnelBefore = await readRssKiB(chain.tunnel.pid);
  const conns = await openMany(chain.port, count);
  try {
    await delay(1000);
    const serverAfter = await readRssKiB(chain.server.pid);
    const tunnelAfter = await readRssKiB(chain.tunnel.pid);
    return {
      serverKiB: (serverAfter - serverBefore) / count,
      tunnelKiB: (tunnelAfter - tunnelBefore) / count,
    };
  } finally {
    for (const conn of conns) closeQuietly(conn);
  }
}

/** Opens `count` echoed connections, 50 at a time. */
async function openMany(port: number, count: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  try {
    for (let at = 0; at < count; at += 50) {
      const batch = Math.min(50, count - at);
      conns.push(...await Promise.all(Array.from({ length: batch }, () => openEchoed(port))));
    }
  } catch (error) {
    for (const conn of conns) closeQuietly(conn);
    throw error;
  }
  return conns;
}

/** Milliseconds for `count` sequential connect + one byte + echo + close through the chain. */
async function measureSetup(port: number, count: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) closeQuietly(await openEchoed(port));
  return performance.now() - started;
}

/** Burst connections that failed, per chain label; reported under the burst table. */
const burstFailures = new Map<string, number>();

/**
 * Milliseconds until `count` connections opened at once have all been echoed or failed; the
 * failures are counted for `label` (a plain Deno listener's overflowing queue can lose one).
 */
async function measureBurst(port: number, count: number, label: string): Promise<number> {
  const started = performance.now();
  const opened = await Promise.allSettled(Array.from({ length: count }, () => openEchoed(port)));
  const elapsed = performance.now() - started;
  const failed = opened.filter((result) => result.status === "rejected").length;
  for (const result of opened) if (result.status === "fulfilled") closeQuietly(result.value);
  if (failed > 0) burstFailures.set(label, (burstFailures.get(label) ?? 0) + failed);
  // Let every hop see the closes before the next burst.
  await delay(500);
  return elapsed;
}

// ---------------------------------------------------------------------------------------------
// Statistics and output.

interface Sample {
  values: number[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function formatSample(sample: Sample | undefined, digits: number): string {
  if (!sample || sample.values.length === 0) return "–";
  const m = median(sample.values).toFixed(digits);
  if (sample.values.length === 1) return m;
  const min = Math.min(...sample.values).toFixed(digits);
  const max = Math.max(...sample.values).toFixed(digits);
  return `${m} (${min}–${max})`;
}

function ratio(a: Sample | undefined, b: Sample | undefined): string {
  if (!a || !b || a.values.length === 0 || b.values.length === 0) return "–";
  const denominator = median(b.values);
  return denominator === 0 ? "–" : (median(a.values) / denominator).toFixed(2);
}

async function machineLine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const libev = await commandText("ss-server", ["-h"]);
  const iperfVersion = await commandText("iperf3", ["--version"]);
  return [
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    `${navigator.hardwareConcurrency} × ${model}`,
    `Deno ${Deno.version.deno}`,
    /shadowsocks-libev [\d.]+/.exec(libev)?.[0] ?? "shadowsocks-libev ?",
    /iperf [\d.]+/.exec(iperfVersion)?.[0] ?? "iperf3 ?",
    `load average at start ${load}`,
  ].join(" · ");
}

async function commandText(command: string, args: string[]): Promise<string> {
  const { stdout, stderr } = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
}

// ---------------------------------------------------------------------------------------------

async function main(args: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(args);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }

  const specs: ChainSpec[] = [];
  const notes: string[] = [];
  if (options.libev) {
    specs.push({ label: "libev", server: { kind: "libev" }, tunnel: { kind: "libev" } });
  }
  for (const variant of options.variants) {
    const ssdeno: Impl = { kind: "ssdeno", variant };
    const hasTunnel = await supportsTunnel(variant);
    const env = [
      ...Object.entries(variant.env).map(([k, v]) => `${k}=${v}`),
      ...variant.runtimeFlags,
    ].join(" ");
    const label = hasTunnel ? variant.name : `${variant.name}*`;
    specs.push({ label, server: ssdeno, tunnel: hasTunnel ? ssdeno : { kind: "libev" } });
    notes.push(
      `\`${label}\`: ${hasTunnel ? "ssdeno tunnel" : "libev ss-tunnel"} → ssdeno server` +
        ` (${variant.dir === ROOT ? "this checkout" : variant.dir}${env ? `, \`${env}\`` : ""})`,
    );
  }
  if (options.floor) {
    specs.push({ label: "deno-fwd", server: { kind: "forwarder" }, tunnel: { kind: "forwarder" } });
    notes.push(
      "`deno-fwd`: bench/forwarder.ts on both sides, a plain Deno TCP forwarder with no protocol " +
        "and no crypto, run with this checkout's runtime flags: what Deno itself costs. It " +
        "encrypts nothing, so its throughput is a ceiling, not a competitor; having no method, " +
        "it runs in the first method's rows only.",
    );
  }
  if (options.libev && options.methods.some((method) => LIBEV_METHOD[method])) {
    notes.push(
      "2022 rows: libev has no 2022 edition, so its cells there are libev running the " +
        "AEAD-2017 method with the same cipher, measured again in that row's own runs.",
    );
  }
  if (specs.some((spec) => spec.label.endsWith("*"))) {
    notes.push(
      "`*`: ssdeno has no tunnel command yet, so only the server side is ssdeno's; " +
        "the tunnel-side memory column is libev's.",
    );
  }
  const header = await machineLine();
  console.log(`# ssdeno vs shadowsocks-libev\n\n${header}\n`);
  console.log(`chains: ${specs.map((spec) => spec.label).join(", ")}`);

  const iperfServerPort = freePort();
  const iperfServer = spawn("iperf3 -s", "iperf3", [
    "-s",
    "-B",
    HOST,
    "-p",
    String(iperfServerPort),
  ], options);
  const echo = startEcho();
  const throughput = new Map<string, Sample>();
  const serverCpuPerGb = new Map<string, Sample>();
  const tunnelCpuPerGb = new Map<string, Sample>();
  const memory = new Map<string, { server: Sample; tunnel: Sample }>();
  const setup = new Map<string, Sample>();
  const burst = new Map<string, Sample>();
  const key = (...parts: (string | number)[]) => parts.join("|");
  const add = (map: Map<string, Sample>, k: string, value: number) => {
    const sample = map.get(k) ?? { values: [] };
    sample.values.push(value);
    map.set(k, sample);
  };

  /**
   * Starts every chain, warms each up with 20 connections, then times `count` connections
   * through each, `repeat` times, chains interleaved.
   */
  const timeConnections = async (
    test: string,
    method: string,
    chainSpecs: ChainSpec[],
    measure: (port: number, count: number, label: string) => Promise<number>,
    count: number,
    results: Map<string, Sample>,
  ) => {
    const chains: RunningChain[] = [];
    try {
      for (const spec of chainSpecs) {
        chains.push(await startChain(spec, method, echo.port, options));
      }
      for (const chain of chains) await measure(chain.port, 20, chain.spec.label);
      for (let rep = 0; rep < options.repeat; rep++) {
        for (const chain of chains) {
          const ms = await measure(chain.port, count, chain.spec.label);
          add(results, key(method, chain.spec.label), ms);
          console.log(`${method} ${test} ${chain.spec.label}: ${ms.toFixed(0)} ms / ${count}`);
        }
      }
    } finally {
      for (const chain of chains) await stopChain(chain);
    }
  };

  try {
    await waitListening(iperfServer, iperfServerPort);
    for (const method of options.methods) {
      // The forwarder has no method: it runs with the first method only.
      const methodSpecs = specs.filter((spec) =>
        spec.server.kind !== "forwarder" || method === options.methods[0]
      );
      if (options.only.has("throughput")) {
        const chains: RunningChain[] = [];
        try {
          for (const spec of methodSpecs) {
            chains.push(await startChain(spec, method, iperfServerPort, options));
          }
          for (const streams of options.streams) {
            for (const reverse of [false, true]) {
              for (let rep = 0; rep < options.repeat; rep++) {
                // Interleaved: each repetition runs every chain once, so drift hits all alike.
                for (const chain of chains) {
                  const serverCpu = await readCpuSeconds(chain.server.pid);
                  const tunnelCpu = await readCpuSeconds(chain.tunnel.pid);
                  const run = await iperfWithRetry(chain.port, streams, reverse, options);
                  if (!run) continue;
                  const { gbps, bytes } = run;
                  // CPU seconds per GB relayed (= ns per byte): how hard each side worked,
                  // which still shows a lever when the other side is the bottleneck.
                  const gb = bytes / 1e9;
                  const serverCost = (await readCpuSeconds(chain.server.pid) - serverCpu) / gb;
                  const tunnelCost = (await readCpuSeconds(chain.tunnel.pid) - tunnelCpu) / gb;
                  const k = key(method, streams, reverse ? "down" : "up", chain.spec.label);
                  add(throughput, k, gbps);
                  add(serverCpuPerGb, k, serverCost);
                  add(tunnelCpuPerGb, k, tunnelCost);
                  console.log(
                    `${method} P${streams} ${reverse ? "down" : "up"} ${chain.spec.label}: ` +
                      `${gbps.toFixed(2)} Gbit/s, CPU s/GB server ${serverCost.toFixed(2)} ` +
                      `tunnel ${tunnelCost.toFixed(2)}`,
                  );
                }
              }
            }
          }
        } finally {
          for (const chain of chains) await stopChain(chain);
        }
      }
      if (options.only.has("memory")) {
        for (let rep = 0; rep < options.repeat; rep++) {
          for (const spec of methodSpecs) {
            // Fresh processes: memory left over from earlier tests would hide the growth.
            const chain = await startChain(spec, method, echo.port, options);
            try {
              const result = await measureIdle(chain, options.idle);
              const k = key(method, spec.label);
              const entry = memory.get(k) ?? { server: { values: [] }, tunnel: { values: [] } };
              entry.server.values.push(result.serverKiB);
              entry.tunnel.values.push(result.tunnelKiB);
              memory.set(k, entry);
              console.log(
                `${method} idle ${spec.label}: server ${result.serverKiB.toFixed(1)} KiB/conn, ` +
                  `tunnel ${result.tunnelKiB.toFixed(1)} KiB/conn`,
              );
            } finally {
              await stopChain(chain);
            }
          }
        }
      }
      if (options.only.has("burst")) {
        await timeConnections("burst", method, methodSpecs, measureBurst, options.burst, burst);
      }
      if (options.only.has("setup")) {
        await timeConnections("setup", method, methodSpecs, measureSetup, options.setup, setup);
      }
    }
  } finally {
    await stopAll();
    await echo.close();
  }

  const markdown = renderMarkdown(header, notes, specs, options, {
    throughput,
    serverCpuPerGb,
    tunnelCpuPerGb,
    memory,
    setup,
    burst,
  });
  console.log(`\n${markdown}`);
  if (options.out) {
    await Deno.writeTextFile(options.out, markdown);
    console.log(`written to ${options.out}`);
  }
  if (options.readme) await updateReadme(markdown);
  return 0;
}

interface Results {
  throughput: Map<string, Sample>;
  serverCpuPerGb: Map<string, Sample>;
  tunnelCpuPerGb: Map<string, Sample>;
  memory: Map<string, { server: Sample; tunnel: Sample }>;
  setup: Map<string, Sample>;
  burst: Map<string, Sample>;
}

function renderMarkdown(
  header: string,
  notes: string[],
  specs: ChainSpec[],
  options: Options,
  results: Results,
): string {
  const { throughput, serverCpuPerGb, tunnelCpuPerGb, memory, setup, burst } = results;
  const ours = specs.filter((spec) => spec.server.kind === "ssdeno");
  const base = specs.find((spec) => spec.server.kind === "libev");
  const lines: string[] = [
    `Measured ${header}.`,
    "",
    `Loopback, iperf3 ${options.duration} s per run, ${options.repeat} run(s) per case with the ` +
    "chains interleaved; each cell is the median (min–max). Other work on the machine makes " +
    "single runs noisy.",
    "",
    ...notes.map((note) => `- ${note}`),
    "",
  ];
  const ratioHeads = base ? ours.map((spec) => `${spec.label}/libev`) : [];
  if (options.only.has("throughput")) {
    lines.push(
      "Throughput, Gbit/s (up = client → target, down = `-R`):",
      "",
      ...tableHead(["method", "streams", "dir", ...specs.map((s) => s.label), ...ratioHeads]),
    );
    for (const method of options.methods) {
      for (const streams of options.streams) {
        for (const dir of ["up", "down"]) {
          const cell = (spec: ChainSpec) =>
            throughput.get([method, streams, dir, spec.label].join("|"));
          const ratios = base ? ours.map((spec) => ratio(cell(spec), cell(base))) : [];
          lines.push(
            tableRow([
              method,
              streams,
              dir,
              ...specs.map((s) => formatSample(cell(s), 2)),
              ...ratios,
            ]),
          );
        }
      }
    }
    lines.push(
      "",
      "CPU seconds per GB relayed (= ns per byte), server side / tunnel side, medians:",
      "",
      ...tableHead(["method", "streams", "dir", ...specs.map((s) => s.label)]),
    );
    for (const method of options.methods) {
      for (const streams of options.streams) {
        for (const dir of ["up", "down"]) {
          const k = (spec: ChainSpec) => [method, streams, dir, spec.label].join("|");
          const cost = (spec: ChainSpec) => {
            const server = serverCpuPerGb.get(k(spec));
            const tunnel = tunnelCpuPerGb.get(k(spec));
            if (!server || !tunnel) return "–";
            return `${median(server.values).toFixed(2)} / ${median(tunnel.values).toFixed(2)}`;
          };
          lines.push(tableRow([method, streams, dir, ...specs.map(cost)]));
        }
      }
    }
    lines.push("");
  }
  if (options.only.has("memory")) {
    lines.push(
      `Idle memory: RSS growth per connection with ${options.idle} connections held open, KiB:`,
      "",
      ...tableHead(["method", "side", ...specs.map((s) => s.label), ...ratioHeads]),
    );
    for (const method of options.methods) {
      for (const side of ["server", "tunnel"] as const) {
        const cell = (spec: ChainSpec) => memory.get([method, spec.label].join("|"))?.[side];
        const ratios = base ? ours.map((spec) => ratio(cell(spec), cell(base))) : [];
        lines.push(
          tableRow([method, side, ...specs.map((s) => formatSample(cell(s), 1)), ...ratios]),
        );
      }
    }
    lines.push("");
  }
  /** A per-method table of milliseconds, one column per chain, then the ratios to libev. */
  const timingTable = (title: string, results: Map<string, Sample>) => {
    lines.push(title, "", ...tableHead(["method", ...specs.map((s) => s.label), ...ratioHeads]));
    for (const method of options.methods) {
      const cell = (spec: ChainSpec) => results.get([method, spec.label].join("|"));
      const ratios = base ? ours.map((spec) => ratio(cell(spec), cell(base))) : [];
      lines.push(tableRow([method, ...specs.map((s) => formatSample(cell(s), 0)), ...ratios]));
    }
    lines.push("");
  };
  if (options.only.has("setup")) {
    timingTable(
      `Connection setup: ${options.setup} sequential connections ` +
        "(connect, 1 byte, echo, close), ms:",
      setup,
    );
  }
  if (options.only.has("burst")) {
    timingTable(
      `Burst: ${options.burst} connections opened at once, each echoing 1 byte, ms until all ` +
        "have echoed:",
      burst,
    );
    for (const [label, failed] of burstFailures) {
      lines.push(
        `${label}: ${failed} burst connection(s) failed in all (timed until the rest echoed).`,
      );
    }
    if (burstFailures.size > 0) lines.push("");
  }
  if (failures > 0) {
    lines.push(`${failures} iperf3 run(s) failed three times and are left out.`, "");
  }
  lines.push("Regenerate with `deno task bench:net` (see bench/throughput.ts for flags).", "");
  return lines.join("\n");
}

/** One markdown table row (`deno fmt` on the written file aligns the columns). */
function tableRow(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** A markdown table's heading row and separator. */
function tableHead(heads: string[]): string[] {
  return [tableRow(heads), tableRow(heads.map(() => "---"))];
}

async function updateReadme(markdown: string): Promise<void> {
  const path = `${ROOT}/README.md`;
  const start = "<!-- bench:start -->";
  const end = "<!-- bench:end -->";
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log("README.md not found: table not copied there");
    return;
  }
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) {
    console.log(`README.md has no ${start} … ${end} block: table not copied there`);
    return;
  }
  await Deno.writeTextFile(
    path,
    `${text.slice(0, from + start.length)}\n${markdown}\n${text.slice(to)}`,
  );
  console.log("README.md benchmark block updated");
}

if (import.meta.main) {
  const onSignal = () => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error(`bench/throughput.ts failed: ${error instanceof Error ? error.message : error}`);
  } finally {
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  Deno.exit(code);
}
