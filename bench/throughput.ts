/**
 * Side-by-side network benchmark: ssdeno against other Shadowsocks implementations ("peers"),
 * in one run, on loopback.
 *
 * ```
 * iperf3 -c ─▶ tunnel ══AEAD══▶ server ─▶ iperf3 -s
 * ```
 *
 * Chains (tunnel → server), each left out with one printed line when its binaries are missing:
 * - `libev`: shadowsocks-libev `ss-tunnel` → `ss-server`;
 * - `rust`: shadowsocks-rust `sslocal --protocol tunnel` → `ssserver`;
 * - `go-ss2`: `go-shadowsocks2 -tcptun` → `go-shadowsocks2 -s`;
 * - `outline`: libev `ss-tunnel` → `outline-ss-server` (Outline has no client of its own);
 * - `ssdeno`: `ssdeno tunnel` → `ssdeno server` (one chain per `--variant`);
 * - `deno-fwd`: bench/forwarder.ts on both sides, no protocol and no crypto: Deno's floor.
 * Peers are found on PATH, then in `$HOME/.cache/ssdeno-peers/NAME/bin` where `.ci/peers.sh`
 * builds them (tests/interop/_peers.ts). libev, go-ss2 and outline have no 2022 edition: in a
 * 2022 row they run the AEAD-2017 method of the same cipher; rust runs all six methods.
 *
 * Targets: outline-ss-server dials only public addresses, with no flag to allow others. When the
 * outline chain is in the run, the targets (iperf3 -s and the echo server, bench/echo_target.ts)
 * run on the test host of tests/_target_host.ts, 198.18.0.2 in the network namespace
 * `ssdeno-target` behind a veth, and every chain of the run uses them, so all relay to the same
 * place (ssdeno gets `--allow-private-targets`, as on loopback). When that host cannot be made
 * (no root, no `ip`), the outline chain is left out with the reason and targets stay on loopback.
 *
 * Four measurements per method (the AEAD-2017 ones and the 2022 edition), each repeated and
 * reported as a median (with min–max):
 * - throughput: iperf3, 1 and 8 streams, upload (client → target) and download (`-R`), Gbit/s,
 *   with the CPU seconds per GB that the server and the tunnel spent meanwhile;
 * - idle memory: RSS growth of the server and the tunnel per connection held open end to end
 *   (each connection sends one byte and waits for its echo, so every hop exists), KiB;
 * - active memory: the same with every connection echoing a 64-byte message once a second
 *   (each at its own offset within the second), measured at the end of the active period, KiB;
 * - setup: wall time of N sequential short connections (connect, one byte, echo, close), ms;
 * - burst: wall time until N connections opened at once have all echoed one byte, ms (a
 *   listener whose accept queue overflows makes clients resend SYNs a second later);
 * - rate: connections per second that C clients, each in a loop (connect, one byte, echo,
 *   close), get through for the run's duration, with the CPU seconds per 1000 connections of
 *   the server and the tunnel and how busy the whole machine was meanwhile (load generators
 *   included: this process's clients, the tunnel, the echo).
 * Tables give ssdeno's ratio to libev and to the best peer of the row (the fastest, or the least
 * CPU, memory or time, among libev, rust, go-ss2 and outline).
 *
 * Until ssdeno has a tunnel command, its chain is "libev ss-tunnel → ssdeno server", which
 * measures the ssdeno server side only (the table says so).
 *
 * Run: `deno task bench:net [flags]`. Flags:
 *   --quick                 smoke test (CI): chacha20-ietf-poly1305, 1 s runs, 50 idle and
 *                           active (2 s) / 100 setup connections, 1 repeat; prints, writes no
 *                           file unless --out
 *   --methods a,b           methods (default: all six, AEAD-2017 and 2022)
 *   --duration S            seconds per iperf3 run (default 5)
 *   --repeat N              repetitions of every case, chains interleaved (default 3)
 *   --idle N                idle connections for the memory test (default 1000)
 *   --active N              connections of the active memory test (default 1000)
 *   --active-seconds S      how long they echo before the measurement (default 10)
 *   --setup N               sequential connections for the setup test (default 2000)
 *   --warmup N              sequential connections each chain serves before the setup and
 *                           rate tests are timed (default 20; the burst test warms up with a
 *                           burst of 20); a few thousand let V8 finish optimizing, to see a
 *                           long-running process's cost rather than a fresh one's
 *   --burst N               connections opened at once for the burst test (default 1000)
 *   --only list             throughput,memory,active,setup,burst,rate (default all)
 *   --rate-clients N        concurrent clients of the rate test (default 32)
 *   --workers list          also run ssdeno servers with `--workers N` for each N (e.g. 1,2),
 *                           chains labelled NAME-wN, and add a scaling table (wN over w1).
 *                           Their tunnel is shadowsocks-rust's multi-threaded sslocal when
 *                           found (so the load generator is not what saturates first), else
 *                           ssdeno's own. The plain `ssdeno` chain runs the server's default:
 *                           one isolate, more as load asks.
 *   --streams list          iperf3 parallel streams (default 1,8)
 *   --variant NAME=DIR[:K=V,K=V]  an ssdeno build (a directory holding main.ts) and environment;
 *                           repeatable; default "ssdeno" = this checkout. Used to compare levers.
 *   --peers list            peer chains to run: libev,rust,go-ss2,outline (default all; an
 *                           empty list runs none)
 *   --no-libev, --no-rust, --no-go-ss2, --no-outline
 *                           leave that peer's chain out (e.g. --no-outline keeps the targets on
 *                           loopback; --no-libev for lever comparisons between variants)
 *   --no-floor              leave out the `deno-fwd` chain: bench/forwarder.ts on both sides, a
 *                           plain Deno TCP forwarder (no protocol, no crypto), i.e. Deno's floor
 *   --out FILE              markdown output (default bench/results.md; none with --quick)
 *   --readme                also replace the block between <!-- bench:start --> and
 *                           <!-- bench:end --> in README.md
 *   --verbose               show the children's stderr
 *
 * Every child process is started here and ended here by its PID (SIGTERM, then SIGKILL after
 * 2 s), on success, on failure and on SIGINT/SIGTERM; the test host's children run through
 * `ip netns exec`, which execs them under the same PID. Only 127.0.0.1 and the test host's
 * address are used.
 * @module
 */

import { serveV8Flags } from "../tests/_child.ts";
import { ensureTargetHost, targetHostCommand } from "../tests/_target_host.ts";
import { findPeer } from "../tests/interop/_peers.ts";
import { closeQuietly, type Echo, startEcho } from "./echo_target.ts";

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
 * What the peers without a 2022 edition (libev, go-ss2, outline) run in a 2022 method's row:
 * the AEAD-2017 method of the same cipher, so the row still compares like ciphers.
 */
const AEAD_2017_METHOD: Record<string, string> = {
  "2022-blake3-aes-128-gcm": "aes-128-gcm",
  "2022-blake3-aes-256-gcm": "aes-256-gcm",
  "2022-blake3-chacha20-poly1305": "chacha20-ietf-poly1305",
};
/** go-shadowsocks2's names for the AEAD-2017 methods (`-cipher` and the `ss://` URL). */
const GO_SS2_CIPHER: Record<string, string> = {
  "aes-128-gcm": "AEAD_AES_128_GCM",
  "aes-256-gcm": "AEAD_AES_256_GCM",
  "chacha20-ietf-poly1305": "AEAD_CHACHA20_POLY1305",
};
/** The measurements `--only` chooses from. */
const ALL_PARTS = ["throughput", "memory", "active", "setup", "burst", "rate"] as const;
/** Bytes each connection of the active memory test echoes once a second. */
const ACTIVE_MESSAGE_BYTES = 64;
/** The peer chains, in table order. */
const PEERS = ["libev", "rust", "go-ss2", "outline"] as const;
type Peer = typeof PEERS[number];
/** The binaries each peer chain runs (outline's tunnel is libev's ss-tunnel). */
const PEER_BINARIES: Record<Peer, string[]> = {
  libev: ["ss-server", "ss-tunnel"],
  rust: ["ssserver", "sslocal"],
  "go-ss2": ["go-shadowsocks2"],
  outline: ["outline-ss-server", "ss-tunnel"],
};
/** Paths of the peer binaries found (`findPeer`), by name. */
const binaries = new Map<string, string>();

function binary(name: string): string {
  const path = binaries.get(name);
  if (!path) throw new Error(`${name} was not looked up`);
  return path;
}

/** ssdeno's `-k` for `method`: 2022 methods take a base64 key of the cipher's size. */
function ssdenoPassword(method: string): string {
  if (!method.startsWith("2022-")) return PASSWORD;
  const size = method === "2022-blake3-aes-128-gcm" ? 16 : 32;
  // A fixed, public benchmark key.
  return btoa(String.fromCharCode(...Array.from({ length: size }, (_, i) => (i * 37 + 11) & 0xff)));
}
const KILL_GRACE_MS = 2000;
/**
 * Echo ports on the test host, one per chain started in turn: a chain makes at most about 6000
 * connections to its port (setup, 3 × 2000) before the pool comes round again, well below the
 * ~14 000 per destination in a minute where connect() slows down (bench/echo_target.ts).
 */
const ECHO_PORTS = 16;
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
  active: number;
  activeSeconds: number;
  setup: number;
  /** Sequential connections per chain before the timed setup and rate runs. */
  warmup: number;
  burst: number;
  only: Set<string>;
  streams: number[];
  /** `--workers`: worker counts to run ssdeno servers with, besides the default chain. */
  workers: number[];
  rateClients: number;
  variants: Variant[];
  /** The peer chains asked for; those whose binaries are missing are left out in `main`. */
  peers: Set<Peer>;
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
    active: quick ? 50 : 1000,
    activeSeconds: quick ? 2 : 10,
    setup: quick ? 100 : 2000,
    warmup: 20,
    burst: quick ? 100 : 1000,
    only: new Set(ALL_PARTS),
    streams: [1, 8],
    workers: [],
    rateClients: quick ? 8 : 32,
    variants: [],
    peers: new Set(PEERS),
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
      case "--active":
        options.active = count(flag, value(), 1);
        break;
      case "--active-seconds":
        options.activeSeconds = count(flag, value(), 1);
        break;
      case "--setup":
        options.setup = count(flag, value(), 1);
        break;
      case "--warmup":
        options.warmup = count(flag, value(), 1);
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
      case "--workers":
        options.workers = list(value()).map((s) => count(flag, s, 1));
        break;
      case "--rate-clients":
        options.rateClients = count(flag, value(), 1);
        break;
      case "--variant":
        options.variants.push(parseVariant(value()));
        break;
      case "--peers":
        options.peers = new Set(
          list(value()).map((name) => {
            if (!(PEERS as readonly string[]).includes(name)) {
              throw new UsageError(`Invalid peer "${name}": expected one of ${PEERS.join(", ")}`);
            }
            return name as Peer;
          }),
        );
        break;
      case "--no-libev":
      case "--no-rust":
      case "--no-go-ss2":
      case "--no-outline":
        options.peers.delete(flag.slice("--no-".length) as Peer);
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
    if (!(ALL_PARTS as readonly string[]).includes(part)) {
      throw new UsageError(`Invalid --only "${part}": expected one of ${ALL_PARTS.join(", ")}`);
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
  try {
    return serveV8Flags(`${dir}/deno.json`);
  } catch (error) {
    throw new UsageError(
      `Cannot read ${dir}/deno.json: ${error instanceof Error ? error.message : error}`,
    );
  }
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

interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string>;
  verbose: boolean;
  /** Run inside the test host's network namespace (`ip netns exec`, same PID). */
  inTargetHost?: boolean;
  /** Pipe stdout (for a child that prints its ports); null otherwise. */
  stdout?: "piped";
}

function spawn(name: string, command: string, args: string[], options: SpawnOptions): Child {
  const commandOptions: Deno.CommandOptions = {
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: options.stdout ?? "null",
    stderr: options.verbose ? "inherit" : "null",
  };
  const process =
    (options.inTargetHost
      ? targetHostCommand(command, args, commandOptions)
      : new Deno.Command(command, { ...commandOptions, args })).spawn();
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

/**
 * True when something listens on TCP `port` in the network namespace of process `pid` (from
 * /proc/PID/net/tcp, which shows that process's namespace: the test host's for its children;
 * no connection is made). False when the process is gone.
 */
async function isListening(port: number, pid: number): Promise<boolean> {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
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
  while (!(await isListening(port, child.pid))) {
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
export async function readCpuSeconds(pid: number): Promise<number> {
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

/**
 * One side of a chain: a peer's binary, an ssdeno build, or the plain Deno forwarder
 * (bench/forwarder.ts): Deno's floor.
 */
type Impl =
  | { kind: "libev" | "rust" | "go-ss2" | "outline" }
  | { kind: "ssdeno"; variant: Variant; workers?: number }
  | { kind: "forwarder" };

interface ChainSpec {
  label: string;
  server: Impl;
  tunnel: Impl;
}

/** A peer's chain: ssdeno is compared with these ("best peer"); deno-fwd is not one. */
function isPeer(spec: ChainSpec): boolean {
  return spec.server.kind !== "ssdeno" && spec.server.kind !== "forwarder";
}

interface RunningChain {
  spec: ChainSpec;
  server: Child;
  tunnel: Child;
  port: number;
}

/** Where a chain's server relays to: loopback, or the test host (see the module comment). */
interface Endpoint {
  host: string;
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
  target: Endpoint,
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

/** A scratch directory for config files (outline-ss-server's), removed at the end of `main`. */
let scratchDir: string | undefined;

function startServerProcess(
  impl: Impl,
  method: string,
  port: number,
  target: Endpoint,
  options: Options,
): Child {
  const listen = ["-s", HOST, "-p", String(port)];
  const aead2017 = AEAD_2017_METHOD[method] ?? method;
  switch (impl.kind) {
    case "libev": {
      const args = [...listen, "-k", PASSWORD, "-m", aead2017, "--no-delay"];
      return spawn("ss-server", binary("ss-server"), args, options);
    }
    case "rust": {
      const args = ["-s", `${HOST}:${port}`, "-m", method, "-k", ssdenoPassword(method)];
      return spawn("ssserver", binary("ssserver"), [...args, "--tcp-no-delay"], options);
    }
    case "go-ss2": {
      const url = `ss://${GO_SS2_CIPHER[aead2017]}:${PASSWORD}@${HOST}:${port}`;
      return spawn("go-shadowsocks2 -s", binary("go-shadowsocks2"), ["-s", url], options);
    }
    case "outline": {
      // Outline's `services` format (JSON is YAML), which can listen on 127.0.0.1 alone; its
      // `keys` format listens on every address.
      const config = {
        services: [{
          listeners: [{ type: "tcp", address: `${HOST}:${port}` }],
          keys: [{ id: "bench", cipher: aead2017, secret: PASSWORD }],
        }],
      };
      scratchDir ??= Deno.makeTempDirSync({ prefix: "ssdeno-bench-" });
      const path = `${scratchDir}/outline-${port}.yml`;
      Deno.writeTextFileSync(path, JSON.stringify(config));
      const args = ["-config", path, "-replay_history", "10000"];
      return spawn("outline-ss-server", binary("outline-ss-server"), args, options);
    }
    case "forwarder":
      return startForwarder("forwarder server", port, target, options);
    case "ssdeno":
      return spawn(
        `${impl.variant.name} server`,
        Deno.execPath(),
        [
          "run",
          "-A",
          ...impl.variant.runtimeFlags,
          "main.ts",
          "server",
          ...listen,
          ...["-k", ssdenoPassword(method), "-m", method],
          ...(impl.workers === undefined ? [] : ["--workers", String(impl.workers)]),
          "--allow-private-targets",
          "-q",
        ],
        { ...options, cwd: impl.variant.dir, env: impl.variant.env },
      );
  }
}

function startTunnelProcess(
  impl: Impl,
  method: string,
  serverPort: number,
  port: number,
  target: Endpoint,
  options: Options,
): Child {
  const route = [
    ...["-s", HOST, "-p", String(serverPort), "-b", HOST, "-l", String(port)],
    ...["-L", `${target.host}:${target.port}`],
  ];
  const aead2017 = AEAD_2017_METHOD[method] ?? method;
  switch (impl.kind) {
    case "libev": {
      const args = [...route, "-k", PASSWORD, "-m", aead2017, "--no-delay"];
      return spawn("ss-tunnel", binary("ss-tunnel"), args, options);
    }
    case "outline":
      throw new Error("outline-ss-server has no client: the outline chain's tunnel is libev's");
    case "rust": {
      const args = [
        ...["--protocol", "tunnel", "-b", `${HOST}:${port}`],
        ...["-f", `${target.host}:${target.port}`, "-s", `${HOST}:${serverPort}`],
        ...["-m", method, "-k", ssdenoPassword(method), "--tcp-no-delay"],
      ];
      return spawn("sslocal", binary("sslocal"), args, options);
    }
    case "go-ss2": {
      const url = `ss://${GO_SS2_CIPHER[aead2017]}:${PASSWORD}@${HOST}:${serverPort}`;
      const tunnel = `${HOST}:${port}=${target.host}:${target.port}`;
      const args = ["-c", url, "-tcptun", tunnel];
      return spawn("go-shadowsocks2 -c", binary("go-shadowsocks2"), args, options);
    }
    case "forwarder":
      return startForwarder("forwarder tunnel", port, { host: HOST, port: serverPort }, options);
    case "ssdeno":
      return spawn(
        `${impl.variant.name} tunnel`,
        Deno.execPath(),
        [
          "run",
          "-A",
          ...impl.variant.runtimeFlags,
          "main.ts",
          "tunnel",
          ...route,
          ...["-k", ssdenoPassword(method), "-m", method, "-q"],
        ],
        { ...options, cwd: impl.variant.dir, env: impl.variant.env },
      );
  }
}

/** bench/forwarder.ts with this checkout's runtime flags, as ssdeno runs. */
function startForwarder(name: string, port: number, target: Endpoint, options: Options): Child {
  return spawn(name, Deno.execPath(), [
    "run",
    "--allow-net",
    ...options.checkoutFlags,
    `${ROOT}/bench/forwarder.ts`,
    String(port),
    String(target.port),
    target.host,
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

/** iperf3 -s and the echo server (memory, setup and burst tests), and how to end them. */
interface Targets {
  iperf: Endpoint;
  /** The echo for the next chain: on the test host, each chain started gets the next port. */
  echo(): Endpoint;
  /** How the markdown describes where they ran. */
  where: string;
  close(): Promise<void>;
}

/**
 * The targets on loopback: iperf3 -s as a child, the echo in this process (as before the test
 * host existed: nothing to gain from a process of its own there).
 */
async function startLoopbackTargets(options: Options): Promise<Targets> {
  const port = freePort();
  const iperf = spawn("iperf3 -s", "iperf3", ["-s", "-B", HOST, "-p", String(port)], options);
  let echo: Echo | undefined;
  try {
    await waitListening(iperf, port);
    echo = startEcho(HOST);
  } catch (error) {
    await stop(iperf);
    throw error;
  }
  const started = echo;
  return {
    iperf: { host: HOST, port },
    echo: () => ({ host: HOST, port: started.port }),
    where: "loopback",
    async close() {
      await stop(iperf);
      await started.close();
    },
  };
}

/**
 * The targets on the test host at `address`: the echo (bench/echo_target.ts, which prints its
 * ports) and iperf3 -s, both children run inside its namespace. The echo listens on
 * ECHO_PORTS ports, taken in turn by the chains started (see bench/echo_target.ts for why).
 */
async function startHostTargets(address: string, options: Options): Promise<Targets> {
  const echo = spawn(
    "echo target",
    Deno.execPath(),
    ["run", "--allow-net", `${ROOT}/bench/echo_target.ts`, address, String(ECHO_PORTS)],
    { ...options, inTargetHost: true, stdout: "piped" },
  );
  let iperf: Child | undefined;
  try {
    const echoPorts = await readPorts(echo);
    let next = 0;
    // A port free here is almost surely free in the namespace too; checked, not assumed.
    let port = freePort();
    for (let tries = 1; await isListening(port, echo.pid); tries++) {
      if (tries >= 10) throw new Error("No free port for iperf3 -s on the test host");
      port = freePort();
    }
    iperf = spawn("iperf3 -s (test host)", "iperf3", ["-s", "-B", address, "-p", String(port)], {
      ...options,
      inTargetHost: true,
    });
    await waitListening(iperf, port);
    const started = iperf;
    return {
      iperf: { host: address, port },
      echo: () => ({ host: address, port: echoPorts[next++ % echoPorts.length]! }),
      where: `the test host ${address}`,
      async close() {
        await stop(started);
        await stop(echo);
      },
    };
  } catch (error) {
    if (iperf) await stop(iperf);
    await stop(echo);
    throw error;
  }
}

/** The ports in the first stdout line (`{"ports": [N, …]}`) of `child`, in the ready timeout. */
async function readPorts(child: Child): Promise<number[]> {
  const reader = child.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), READY_TIMEOUT_MS);
  });
  let text = "";
  try {
    while (!text.includes("\n")) {
      const read = await Promise.race([reader.read(), deadline]);
      if (!read) throw new Error(`${child.name} printed no ports in time`);
      if (read.done) throw new Error(`${child.name} exited before it listened`);
      text += read.value;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel();
  }
  const ports = (JSON.parse(text.slice(0, text.indexOf("\n"))) as { ports?: unknown }).ports;
  if (!Array.isArray(ports) || ports.length === 0 || !ports.every(Number.isInteger)) {
    throw new Error(`${child.name} printed no ports: ${text}`);
  }
  return ports;
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

/**
 * RSS growth per connection, server and tunnel side, of `count` connections held open through
 * the chain while `during` runs (the connections stay open until it has resolved).
 */
async function rssGrowthPerConnection(
  chain: RunningChain,
  count: number,
  during: (conns: Deno.TcpConn[]) => Promise<void>,
): Promise<MemoryResult> {
  // Warm up: code paths, JIT and lazily loaded libraries are not per-connection memory.
  for (const conn of await openMany(chain.port, 20)) closeQuietly(conn);
  await delay(500);
  const serverBefore = await readRssKiB(chain.server.pid);
  const tunnelBefore = await readRssKiB(chain.tunnel.pid);
  const conns = await openMany(chain.port, count);
  try {
    await during(conns);
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

/** RSS growth per idle connection held through the chain, read a second after they opened. */
function measureIdle(chain: RunningChain, count: number): Promise<MemoryResult> {
  return rssGrowthPerConnection(chain, count, () => delay(1000));
}

/**
 * RSS growth per connection held open through the chain while every connection echoes
 * `ACTIVE_MESSAGE_BYTES` once a second, each at its own offset within the second (so the
 * chain sees a steady `count` messages a second): read after `seconds` of it, with the
 * connections still echoing. Every echo is checked byte for byte; a wrong or missing one fails
 * the measurement.
 */
function measureActive(
  chain: RunningChain,
  count: number,
  seconds: number,
): Promise<MemoryResult> {
  return rssGrowthPerConnection(chain, count, async (conns) => {
    const started = performance.now();
    let failure: unknown;
    const echoLoop = async (conn: Deno.TcpConn, index: number) => {
      const message = new Uint8Array(ACTIVE_MESSAGE_BYTES);
      const reply = new Uint8Array(ACTIVE_MESSAGE_BYTES);
      for (let round = 0; round < seconds && failure === undefined; round++) {
        const at = started + round * 1000 + (index * 1000) / count;
        await delay(Math.max(0, at - performance.now()));
        message.fill((index + round) & 0xff);
        message[0] = round & 0xff;
        for (let written = 0; written < message.length;) {
          written += await conn.write(message.subarray(written));
        }
        for (let read = 0; read < reply.length;) {
          const n = await conn.read(reply.subarray(read));
          if (n === null) throw new Error("Connection closed during the active memory test");
          read += n;
        }
        if (reply.some((byte, i) => byte !== message[i])) {
          throw new Error("Wrong echo during the active memory test");
        }
      }
    };
    await Promise.all(conns.map((conn, index) =>
      echoLoop(conn, index).catch((error) => {
        failure ??= error;
      })
    ));
    if (failure !== undefined) throw failure;
  });
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
export async function measureSetup(port: number, count: number): Promise<number> {
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

/** Busy and total CPU time of the whole machine so far, in USER_HZ ticks (/proc/stat). */
async function readMachineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((sum, n) => sum + n, 0);
  // idle and iowait are the 4th and 5th fields.
  return { busy: total - ticks[3]! - ticks[4]!, total };
}

interface RateResult {
  perSecond: number;
  /** Server CPU seconds per second of the run: how many cores it kept busy. */
  serverCores: number;
  serverCpuPer1000: number;
  tunnelCpuPer1000: number;
  /** Share of the machine's CPU time that was busy, 0–1 (all cores, everything running). */
  machineBusy: number;
  failed: number;
}

/**
 * Connections per second through `chain` with `clients` clients each looping (connect, one
 * byte, echo, close) for `seconds`, and what it cost the server and the tunnel.
 */
async function measureRate(
  chain: RunningChain,
  clients: number,
  seconds: number,
): Promise<RateResult> {
  const serverCpu = await readCpuSeconds(chain.server.pid);
  const tunnelCpu = await readCpuSeconds(chain.tunnel.pid);
  const machine = await readMachineTicks();
  const started = performance.now();
  const until = started + seconds * 1000;
  let done = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < until) {
      try {
        closeQuietly(await openEchoed(chain.port));
        done++;
      } catch {
        failed++;
        await delay(10);
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  const machineAfter = await readMachineTicks();
  const thousands = Math.max(done, 1) / 1000;
  const serverSpent = await readCpuSeconds(chain.server.pid) - serverCpu;
  const result = {
    perSecond: done / elapsed,
    serverCores: serverSpent / elapsed,
    serverCpuPer1000: serverSpent / thousands,
    tunnelCpuPer1000: (await readCpuSeconds(chain.tunnel.pid) - tunnelCpu) / thousands,
    machineBusy: (machineAfter.busy - machine.busy) /
      Math.max(1, machineAfter.total - machine.total),
    failed,
  };
  // Let every hop see the closes (and TIME_WAIT drain a little) before the next run.
  await delay(1000);
  return result;
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

async function machineLine(peers: readonly Peer[]): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const iperfVersion = await commandText("iperf3", ["--version"]);
  const versions: string[] = [];
  for (const peer of peers) versions.push(await peerVersion(peer));
  return [
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    `${navigator.hardwareConcurrency} × ${model}`,
    `Deno ${Deno.version.deno}`,
    ...versions,
    /iperf [\d.]+/.exec(iperfVersion)?.[0] ?? "iperf3 ?",
    `load average at start ${load}`,
  ].join(" · ");
}

/** "shadowsocks-rust 1.25.0" and the like, from the binary or the folder .ci/peers.sh made. */
async function peerVersion(peer: Peer): Promise<string> {
  switch (peer) {
    case "libev": {
      const text = await commandText(binary("ss-server"), ["-h"]);
      return /shadowsocks-libev [\d.]+/.exec(text)?.[0] ?? "shadowsocks-libev ?";
    }
    case "rust": {
      const text = await commandText(binary("ssserver"), ["--version"]);
      return `shadowsocks-rust ${/\d+\.\d+\.\d+/.exec(text)?.[0] ?? "?"}`;
    }
    case "go-ss2": {
      // go-shadowsocks2 prints no version: its folder is named after it.
      const version = /go-shadowsocks2-([\d.]+)\/bin\//.exec(binary("go-shadowsocks2"))?.[1];
      return `go-shadowsocks2 ${version ?? "?"}`;
    }
    case "outline": {
      const text = await commandText(binary("outline-ss-server"), ["-version"]);
      return `outline-ss-server ${/\d+\.\d+\.\d+/.exec(text)?.[0] ?? "?"}`;
    }
  }
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

  for (const name of new Set(Object.values(PEER_BINARIES).flat())) {
    const path = findPeer(name);
    if (path) binaries.set(name, path);
  }
  /** Peers left out, and why: printed now and noted under the tables. */
  const leftOut: string[] = [];
  const peers = PEERS.filter((peer) => {
    if (!options.peers.has(peer)) return false;
    const missing = PEER_BINARIES[peer].filter((name) => !binaries.has(name));
    if (missing.length > 0) {
      leftOut.push(
        `\`${peer}\` left out: ${missing.join(", ")} not found on PATH or where ` +
          "`.ci/peers.sh` builds the peers (`$HOME/.cache/ssdeno-peers/NAME/bin`).",
      );
    }
    return missing.length === 0;
  });
  /** Started here already when outline is in: a failure to start them leaves outline out. */
  let hostTargets: Targets | undefined;
  if (peers.includes("outline")) {
    const host = await ensureTargetHost();
    let reason = host.ok ? undefined : host.reason;
    if (host.ok) {
      try {
        hostTargets = await startHostTargets(host.address, options);
      } catch (error) {
        // E.g. `ip netns exec` refused to a non-root user on a machine where root made the host.
        reason = `its targets did not start: ${error instanceof Error ? error.message : error}`;
      }
    }
    if (reason !== undefined) {
      peers.splice(peers.indexOf("outline"), 1);
      leftOut.push(
        "`outline` left out: it dials only public addresses and the test host for them could " +
          `not be had (${reason}); the targets stay on loopback.`,
      );
    }
  }
  for (const line of leftOut) console.log(line);

  const specs: ChainSpec[] = [];
  const notes: string[] = [];
  const peerNotes: Record<Peer, string> = {
    libev: "`libev`: shadowsocks-libev ss-tunnel → ss-server, both with `--no-delay`.",
    rust: "`rust`: shadowsocks-rust sslocal `--protocol tunnel` → ssserver, both with " +
      "`--tcp-no-delay` and their default multi-threaded runtime; it runs every method itself, " +
      "the 2022 ones included.",
    "go-ss2": "`go-ss2`: go-shadowsocks2 `-c … -tcptun` → go-shadowsocks2 `-s`.",
    outline: "`outline`: libev ss-tunnel → outline-ss-server (`-replay_history 10000`). Outline " +
      "has no client, so this chain's tunnel-side columns are libev's ss-tunnel again.",
  };
  for (const peer of peers) {
    // Outline has no client: its chain's tunnel is libev's ss-tunnel.
    const tunnel: Impl = { kind: peer === "outline" ? "libev" : peer };
    specs.push({ label: peer, server: { kind: peer }, tunnel });
    notes.push(peerNotes[peer]);
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
  if (options.workers.length > 0) {
    // A multi-threaded load generator when there is one: a one-isolate tunnel would saturate
    // before a two-isolate server does.
    const rustTunnel = binaries.has("sslocal");
    for (const variant of options.variants) {
      for (const workers of options.workers) {
        specs.push({
          label: `${variant.name}-w${workers}`,
          server: { kind: "ssdeno", variant, workers },
          tunnel: rustTunnel ? { kind: "rust" } : { kind: "ssdeno", variant },
        });
      }
    }
    notes.push(
      `\`NAME-wN\`: ${rustTunnel ? "shadowsocks-rust sslocal" : "ssdeno tunnel"} → ssdeno ` +
        "server with `--workers N` (N isolates accept on the port, SO_REUSEPORT). The tunnel " +
        `side of these chains is ${rustTunnel ? "rust's" : "ssdeno's"}, a load generator like ` +
        "iperf3 and the echo, all on the same machine as the server.",
    );
  }
  notes.push(
    "`ssdeno` (and other variants) run the server's default isolates: one, and one more each " +
      `time the process has been busy for 3 s, up to one per core (${navigator.hardwareConcurrency} ` +
      "here; service/worker_scaling.ts; `--verbose` shows the server's log). Runs before " +
      "2026-12-01 started one per core at once; `--workers N` pins the count.",
  );
  if (options.floor) {
    specs.push({ label: "deno-fwd", server: { kind: "forwarder" }, tunnel: { kind: "forwarder" } });
    notes.push(
      "`deno-fwd`: bench/forwarder.ts on both sides, a plain Deno TCP forwarder with no protocol " +
        "and no crypto, run with this checkout's runtime flags: what Deno itself costs. It " +
        "encrypts nothing, so its throughput is a ceiling, not a competitor; having no method, " +
        "it runs in the first method's rows only, but in every row of the setup test, where " +
        "each row's ratio to it is also given paired by repeat.",
    );
  }
  const without2022 = peers.filter((peer) => peer !== "rust");
  if (without2022.length > 0 && options.methods.some((method) => AEAD_2017_METHOD[method])) {
    const names = without2022.map((peer) => `\`${peer}\``);
    const list = names.length === 1
      ? names[0]
      : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
    notes.push(
      `2022 rows: ${list} ${names.length === 1 ? "has" : "have"} no 2022 edition, so ` +
        `${names.length === 1 ? "its" : "their"} cells there are the AEAD-2017 method with ` +
        "the same cipher, measured again in that row's own runs" +
        (peers.includes("rust") ? "; `rust` runs the 2022 method." : "."),
    );
  }
  if (peers.length > 0) {
    notes.push(
      "`/best`: ssdeno's median over the best peer's in that row (the highest throughput; the " +
        "least CPU, memory or time) among the peer chains, named in brackets; `deno-fwd` is no " +
        "peer" +
        (peers.includes("outline")
          ? ", and tunnel-side cells leave out `outline` (its tunnel is libev's)."
          : "."),
    );
  }
  if (specs.some((spec) => spec.label.endsWith("*"))) {
    notes.push(
      "`*`: ssdeno has no tunnel command yet, so only the server side is ssdeno's; " +
        "the tunnel-side memory column is libev's.",
    );
  }
  if (hostTargets) {
    notes.push(
      `Targets: iperf3 -s and the echo server run on ${hostTargets.where}, in a network ` +
        "namespace behind a veth pair (tests/_target_host.ts), because outline-ss-server dials " +
        "only public addresses. Every chain relays there, so for all alike the server → target " +
        "hop crosses the veth (MTU 1500) rather than loopback (MTU 65536).",
    );
  }
  notes.push(...leftOut);
  if (specs.some((spec) => spec.label.endsWith("*")) && !binaries.has("ss-tunnel")) {
    console.error("ssdeno has no tunnel command here and libev's ss-tunnel is missing");
    return 1;
  }
  const header = await machineLine(peers);
  console.log(`# ssdeno vs peers\n\n${header}\n`);
  console.log(`chains: ${specs.map((spec) => spec.label).join(", ")}`);

  const targets = hostTargets ?? await startLoopbackTargets(options);
  console.log(`targets: ${targets.where}`);
  const throughput = new Map<string, Sample>();
  const serverCpuPerGb = new Map<string, Sample>();
  const tunnelCpuPerGb = new Map<string, Sample>();
  const memory = new Map<string, { server: Sample; tunnel: Sample }>();
  const active = new Map<string, { server: Sample; tunnel: Sample }>();
  const setup = new Map<string, Sample>();
  const burst = new Map<string, Sample>();
  const rate = new Map<string, Sample>();
  const rateServerCores = new Map<string, Sample>();
  const serverCores = new Map<string, Sample>();
  const serverCpuPer1000 = new Map<string, Sample>();
  const tunnelCpuPer1000 = new Map<string, Sample>();
  const machineBusy = new Map<string, Sample>();
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
        chains.push(await startChain(spec, method, targets.echo(), options));
      }
      // The burst test warms up with a small burst, the setup test with sequential connections.
      for (const chain of chains) {
        if (test === "setup") await measureSetup(chain.port, options.warmup);
        else await measure(chain.port, 20, chain.spec.label);
      }
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
    for (const method of options.methods) {
      // The forwarder has no method: it runs with the first method only.
      const methodSpecs = specs.filter((spec) =>
        spec.server.kind !== "forwarder" || method === options.methods[0]
      );
      if (options.only.has("throughput")) {
        const chains: RunningChain[] = [];
        try {
          for (const spec of methodSpecs) {
            chains.push(await startChain(spec, method, targets.iperf, options));
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
                  const serverSpent = await readCpuSeconds(chain.server.pid) - serverCpu;
                  const serverCost = serverSpent / gb;
                  const tunnelCost = (await readCpuSeconds(chain.tunnel.pid) - tunnelCpu) / gb;
                  const k = key(method, streams, reverse ? "down" : "up", chain.spec.label);
                  add(throughput, k, gbps);
                  add(serverCpuPerGb, k, serverCost);
                  add(tunnelCpuPerGb, k, tunnelCost);
                  add(serverCores, k, serverSpent / options.duration);
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
      const memoryCases = [
        ["memory", "idle", memory, (chain: RunningChain) => measureIdle(chain, options.idle)],
        [
          "active",
          "active",
          active,
          (chain: RunningChain) => measureActive(chain, options.active, options.activeSeconds),
        ],
      ] as const;
      for (const [only, label, store, measure] of memoryCases) {
        if (!options.only.has(only)) continue;
        for (let rep = 0; rep < options.repeat; rep++) {
          for (const spec of methodSpecs) {
            // Fresh processes: memory left over from earlier tests would hide the growth.
            const chain = await startChain(spec, method, targets.echo(), options);
            try {
              const result = await measure(chain);
              const k = key(method, spec.label);
              const entry = store.get(k) ?? { server: { values: [] }, tunnel: { values: [] } };
              entry.server.values.push(result.serverKiB);
              entry.tunnel.values.push(result.tunnelKiB);
              store.set(k, entry);
              console.log(
                `${method} ${label} ${spec.label}: server ${
                  result.serverKiB.toFixed(1)
                } KiB/conn, ` +
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
        // The forwarder runs in every method's setup rows (it is short), so that each row has a
        // floor measured in the same repeats: a single run's medians drift by more than a lever
        // between one method's rows and the next on a shared machine.
        await timeConnections("setup", method, specs, measureSetup, options.setup, setup);
      }
      if (options.only.has("rate")) {
        const chains: RunningChain[] = [];
        try {
          for (const spec of methodSpecs) {
            chains.push(await startChain(spec, method, targets.echo(), options));
          }
          for (const chain of chains) await measureSetup(chain.port, options.warmup);
          for (let rep = 0; rep < options.repeat; rep++) {
            for (const chain of chains) {
              const result = await measureRate(chain, options.rateClients, options.duration);
              const k = key(method, chain.spec.label);
              add(rate, k, result.perSecond);
              add(rateServerCores, k, result.serverCores);
              add(serverCpuPer1000, k, result.serverCpuPer1000);
              add(tunnelCpuPer1000, k, result.tunnelCpuPer1000);
              add(machineBusy, k, result.machineBusy * 100);
              console.log(
                `${method} rate ${chain.spec.label}: ${result.perSecond.toFixed(0)} conn/s, ` +
                  `CPU s/1000 server ${result.serverCpuPer1000.toFixed(3)} tunnel ` +
                  `${result.tunnelCpuPer1000.toFixed(3)}, machine ${
                    (result.machineBusy * 100).toFixed(0)
                  }% busy` + (result.failed ? `, ${result.failed} failed` : ""),
              );
            }
          }
        } finally {
          for (const chain of chains) await stopChain(chain);
        }
      }
    }
  } finally {
    await targets.close();
    await stopAll();
    if (scratchDir) await Deno.remove(scratchDir, { recursive: true });
  }

  const markdown = renderMarkdown(header, notes, specs, options, {
    throughput,
    serverCpuPerGb,
    tunnelCpuPerGb,
    memory,
    active,
    setup,
    burst,
    rate,
    rateServerCores,
    serverCores,
    serverCpuPer1000,
    tunnelCpuPer1000,
    machineBusy,
  }, targets.where);
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
  active: Map<string, { server: Sample; tunnel: Sample }>;
  setup: Map<string, Sample>;
  burst: Map<string, Sample>;
  rate: Map<string, Sample>;
  /** Cores the server kept busy (CPU seconds per second), rate test and throughput runs. */
  rateServerCores: Map<string, Sample>;
  serverCores: Map<string, Sample>;
  serverCpuPer1000: Map<string, Sample>;
  tunnelCpuPer1000: Map<string, Sample>;
  /** Percent of the machine's CPU busy during each rate run. */
  machineBusy: Map<string, Sample>;
}

/**
 * ssdeno's median over the best peer's in a row, with that peer's label ("0.93 (rust)"); best is
 * the highest median when `higherIsBetter`, else the lowest. "–" when nothing to compare.
 */
function ratioToBest(
  ours: Sample | undefined,
  peers: { label: string; sample: Sample | undefined }[],
  higherIsBetter: boolean,
): string {
  let best: { label: string; value: number } | undefined;
  for (const { label, sample } of peers) {
    if (!sample || sample.values.length === 0) continue;
    const value = median(sample.values);
    if (!best || (higherIsBetter ? value > best.value : value < best.value)) {
      best = { label, value };
    }
  }
  if (!best || !ours || ours.values.length === 0 || best.value <= 0) return "–";
  return `${(median(ours.values) / best.value).toFixed(2)} (${best.label})`;
}

function renderMarkdown(
  header: string,
  notes: string[],
  specs: ChainSpec[],
  options: Options,
  results: Results,
  targetsWhere: string,
): string {
  const { throughput, serverCpuPerGb, tunnelCpuPerGb, memory, setup, burst } = results;
  const ours = specs.filter((spec) => spec.server.kind === "ssdeno");
  const base = specs.find((spec) => spec.server.kind === "libev");
  const peers = specs.filter(isPeer);
  /**
   * The peers whose tunnel side is their own, for tunnel-side comparisons: outline's tunnel is
   * libev's ss-tunnel, already in the libev chain.
   */
  const ownTunnels = peers.filter((spec) => spec.tunnel.kind === spec.server.kind);
  const where = targetsWhere === "loopback"
    ? "Loopback"
    : `Chains on loopback, targets on ${targetsWhere}`;
  const lines: string[] = [
    `Measured ${header}.`,
    "",
    `${where}, iperf3 ${options.duration} s per run, ${options.repeat} run(s) per case with the ` +
    "chains interleaved; each cell is the median (min–max). Other work on the machine makes " +
    "single runs noisy.",
    "",
    ...notes.map((note) => `- ${note}`),
    "",
  ];
  const ratioHeads = [
    ...(base ? ours.map((spec) => `${spec.label}/libev`) : []),
    ...(peers.length > 0 ? ours.map((spec) => `${spec.label}/best`) : []),
  ];
  /**
   * The ratio cells of a row: to libev, then to the best of `candidates`, for each ssdeno chain.
   */
  const ratioCells = (
    cell: (spec: ChainSpec) => Sample | undefined,
    higherIsBetter: boolean,
    candidates = peers,
  ) => [
    ...(base ? ours.map((spec) => ratio(cell(spec), cell(base))) : []),
    ...(peers.length > 0
      ? ours.map((spec) =>
        ratioToBest(
          cell(spec),
          candidates.map((peer) => ({ label: peer.label, sample: cell(peer) })),
          higherIsBetter,
        )
      )
      : []),
  ];
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
          lines.push(
            tableRow([
              method,
              streams,
              dir,
              ...specs.map((s) => formatSample(cell(s), 2)),
              ...ratioCells(cell, true),
            ]),
          );
        }
      }
    }
    const bestHeads = peers.length > 0 ? ours.map((spec) => `${spec.label}/best`) : [];
    lines.push(
      "",
      "CPU seconds per GB relayed (= ns per byte), server side / tunnel side, medians:",
      "",
      ...tableHead(["method", "streams", "dir", ...specs.map((s) => s.label), ...bestHeads]),
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
          /** Server side and tunnel side each against the least CPU among the peers. */
          const best = (side: Map<string, Sample>, spec: ChainSpec, candidates: ChainSpec[]) =>
            ratioToBest(
              side.get(k(spec)),
              candidates.map((peer) => ({ label: peer.label, sample: side.get(k(peer)) })),
              false,
            );
          const toBest = (spec: ChainSpec) =>
            `${best(serverCpuPerGb, spec, peers)} / ${best(tunnelCpuPerGb, spec, ownTunnels)}`;
          lines.push(
            tableRow([
              method,
              streams,
              dir,
              ...specs.map(cost),
              ...(peers.length > 0 ? ours.map(toBest) : []),
            ]),
          );
        }
      }
    }
    lines.push("");
  }
  /** A memory table: per method, server and tunnel rows, one column per chain. */
  const memoryTable = (title: string, results: Map<string, { server: Sample; tunnel: Sample }>) => {
    lines.push(
      title,
      "",
      ...tableHead(["method", "side", ...specs.map((s) => s.label), ...ratioHeads]),
    );
    for (const method of options.methods) {
      for (const side of ["server", "tunnel"] as const) {
        const cell = (spec: ChainSpec) => results.get([method, spec.label].join("|"))?.[side];
        lines.push(
          tableRow([
            method,
            side,
            ...specs.map((s) => formatSample(cell(s), 1)),
            ...ratioCells(cell, false, side === "tunnel" ? ownTunnels : peers),
          ]),
        );
      }
    }
    lines.push("");
  };
  if (options.only.has("memory")) {
    memoryTable(
      `Idle memory: RSS growth per connection with ${options.idle} connections held open, KiB:`,
      memory,
    );
  }
  if (options.only.has("active")) {
    memoryTable(
      `Active memory: RSS growth per connection with ${options.active} connections held open, ` +
        `each echoing ${ACTIVE_MESSAGE_BYTES} bytes once a second, read after ` +
        `${options.activeSeconds} s, KiB:`,
      results.active,
    );
  }
  /** A per-method table of milliseconds, one column per chain, then the ratios. */
  const timingTable = (title: string, results: Map<string, Sample>) => {
    lines.push(title, "", ...tableHead(["method", ...specs.map((s) => s.label), ...ratioHeads]));
    for (const method of options.methods) {
      const cell = (spec: ChainSpec) => results.get([method, spec.label].join("|"));
      lines.push(
        tableRow([
          method,
          ...specs.map((s) => formatSample(cell(s), 0)),
          ...ratioCells(cell, false),
        ]),
      );
    }
    lines.push("");
  };
  if (options.only.has("setup")) {
    timingTable(
      `Connection setup: ${options.setup} sequential connections ` +
        `(connect, 1 byte, echo, close), each chain having served ${options.warmup} before, ms:`,
      setup,
    );
    const floor = specs.find((spec) => spec.server.kind === "forwarder");
    if (floor && ours.length > 0) {
      lines.push(...floorRatioTable(options.methods, ours, floor, setup));
    }
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
  if (options.only.has("rate")) {
    lines.push(
      `Connection rate: ${options.rateClients} clients, each connecting, echoing 1 byte and ` +
        `closing in a loop for ${options.duration} s; connections per second:`,
      "",
      ...tableHead(["method", ...specs.map((s) => s.label), ...ratioHeads]),
    );
    for (const method of options.methods) {
      const cell = (spec: ChainSpec) => results.rate.get([method, spec.label].join("|"));
      lines.push(
        tableRow([
          method,
          ...specs.map((s) => formatSample(cell(s), 0)),
          ...ratioCells(cell, true),
        ]),
      );
    }
    lines.push(
      "",
      "CPU seconds per 1000 connections in the rate test, server side / tunnel side, medians " +
        "(and the machine's CPU busy meanwhile, all cores):",
      "",
      ...tableHead(["method", ...specs.map((s) => s.label)]),
    );
    for (const method of options.methods) {
      const k = (spec: ChainSpec) => [method, spec.label].join("|");
      lines.push(tableRow([
        method,
        ...specs.map((spec) => {
          const server = results.serverCpuPer1000.get(k(spec));
          const tunnel = results.tunnelCpuPer1000.get(k(spec));
          const busy = results.machineBusy.get(k(spec));
          if (!server || !tunnel || !busy) return "–";
          return `${median(server.values).toFixed(3)} / ${median(tunnel.values).toFixed(3)} ` +
            `(${median(busy.values).toFixed(0)}%)`;
        }),
      ]));
    }
    lines.push("");
  }
  if (options.workers.length > 1) lines.push(...scalingTable(specs, options, results));
  if (failures > 0) {
    lines.push(`${failures} iperf3 run(s) failed three times and are left out.`, "");
  }
  lines.push("Regenerate with `deno task bench:net` (see bench/throughput.ts for flags).", "");
  return lines.join("\n");
}

/**
 * Setup against the floor, row by row: each repeat's ssdeno time over the `deno-fwd` time of the
 * same repeat (the chains run back to back), the median of those ratios and their range. Pairing
 * cancels the drift between repeats that a ratio of the two medians keeps.
 */
function floorRatioTable(
  methods: readonly string[],
  ours: readonly ChainSpec[],
  floor: ChainSpec,
  setup: Map<string, Sample>,
): string[] {
  const lines = [
    `Setup over \`${floor.label}\`, paired by repeat: median (min–max) of each repeat's ratio:`,
    "",
    ...tableHead(["method", ...ours.map((spec) => `${spec.label}/${floor.label}`)]),
  ];
  for (const method of methods) {
    const floorValues = setup.get([method, floor.label].join("|"))?.values ?? [];
    lines.push(tableRow([
      method,
      ...ours.map((spec) => {
        const values = setup.get([method, spec.label].join("|"))?.values ?? [];
        const n = Math.min(values.length, floorValues.length);
        if (n === 0) return "–";
        const ratios = Array.from({ length: n }, (_, i) => values[i]! / floorValues[i]!);
        return `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–` +
          `${Math.max(...ratios).toFixed(2)})`;
      }),
    ]));
  }
  lines.push("");
  return lines;
}

/**
 * The workers table: for each variant, every `--workers` count against the first (usually 1):
 * throughput with the most streams, connections per second, the cores the server kept busy, and
 * its CPU per GB and per 1000 connections. The scaling factor is the ratio of medians.
 */
function scalingTable(specs: ChainSpec[], options: Options, results: Results): string[] {
  const counts = options.workers;
  const base = counts[0]!;
  const streams = Math.max(...options.streams);
  const lines = [
    `Workers: the ssdeno server with --workers ${counts.join(", ")}; \`×\` is the scaling ` +
    `factor over --workers ${base} (ratio of medians; ${navigator.hardwareConcurrency} cores ` +
    'shared with the load generators). "Server cores busy" is the server\'s CPU seconds per ' +
    "second of the run: one isolate cannot go much above 1.",
    "",
    ...tableHead([
      "method",
      "measure",
      ...counts.map((n) => `w${n}`),
      ...counts.slice(1).map((n) => `× w${n}/w${base}`),
    ]),
  ];
  const firsts = specs.filter((spec) =>
    spec.server.kind === "ssdeno" && spec.server.workers === base
  );
  for (const first of firsts) {
    const name = first.label.slice(0, -`-w${base}`.length);
    const label = (n: number) => `${name}-w${n}`;
    for (const method of options.methods) {
      const rows: [string, (n: number) => Sample | undefined, number][] = [];
      if (options.only.has("throughput")) {
        for (const dir of ["up", "down"]) {
          const k = (n: number) => [method, streams, dir, label(n)].join("|");
          rows.push(
            [`Gbit/s, ${streams} streams ${dir}`, (n) => results.throughput.get(k(n)), 2],
            [
              `server cores busy, ${streams} streams ${dir}`,
              (n) => results.serverCores.get(k(n)),
              2,
            ],
            [
              `server CPU s/GB, ${streams} streams ${dir}`,
              (n) => results.serverCpuPerGb.get(k(n)),
              2,
            ],
          );
        }
      }
      if (options.only.has("rate")) {
        const k = (n: number) => [method, label(n)].join("|");
        rows.push(
          ["connections/s", (n) => results.rate.get(k(n)), 0],
          ["server cores busy, rate test", (n) => results.rateServerCores.get(k(n)), 2],
          ["server CPU s/1000 connections", (n) => results.serverCpuPer1000.get(k(n)), 3],
          ["machine CPU busy %, rate test", (n) => results.machineBusy.get(k(n)), 0],
        );
      }
      for (const [measure, cell, digits] of rows) {
        lines.push(tableRow([
          method,
          measure,
          ...counts.map((n) => formatSample(cell(n), digits)),
          ...counts.slice(1).map((n) => ratio(cell(n), cell(base))),
        ]));
      }
    }
  }
  lines.push("");
  return lines;
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
    stopAll().finally(() => {
      if (scratchDir) Deno.removeSync(scratchDir, { recursive: true });
      Deno.exit(130);
    });
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
