/**
 * Peers for interop tests: finding shadowsocks-libev binaries (and curl) on PATH, deciding per
 * test whether to run, skip or fail, and running libev processes on free loopback ports.
 *
 * Missing binaries: with `CI=true` the test fails and names the package to install; elsewhere it
 * is registered as ignored and a line on stdout says why.
 *
 * ```ts
 * peerTest({
 *   name: "libev ss-server answers",
 *   peers: ["ss-server"],
 *   async fn() {
 *     await using server = await startSsServer({ method: "aes-128-gcm", password: "pw" });
 *     // connect to server.port ...
 *   },
 * });
 * ```
 * @module
 */
import { spawnCollected } from "../_child.ts";

/** Binaries the interop tests may need. */
export type PeerName =
  | "ss-server"
  | "ss-local"
  | "ss-tunnel"
  | "curl"
  | "sslocal"
  | "ssserver"
  | "ssurl"
  | "ssserver-py"
  | "sslocal-py"
  | "sing-box"
  | "outline-ss-server"
  | "go-shadowsocks2"
  | "obfs-server"
  | "obfs-local"
  | "ss-v2ray-plugin"
  | "chromium";

/** How to install each binary. */
const INSTALL_HINT: Record<PeerName, string> = {
  "ss-server": "apt-get install -y shadowsocks-libev",
  "ss-local": "apt-get install -y shadowsocks-libev",
  "ss-tunnel": "apt-get install -y shadowsocks-libev",
  "curl": "apt-get install -y curl",
  "sslocal": "bash .ci/peers.sh (cargo install shadowsocks-rust)",
  "ssserver": "bash .ci/peers.sh (cargo install shadowsocks-rust)",
  "ssurl": "bash .ci/peers.sh (cargo install shadowsocks-rust)",
  "ssserver-py": "bash .ci/peers.sh (pip install of shadowsocks 2.8.2, the Python original)",
  "sslocal-py": "bash .ci/peers.sh (pip install of shadowsocks 2.8.2, the Python original)",
  "sing-box": "bash .ci/peers.sh (go install of sing-box)",
  "outline-ss-server": "bash .ci/peers.sh (go install of outline-ss-server)",
  "go-shadowsocks2": "bash .ci/peers.sh (go install of go-shadowsocks2)",
  "obfs-server": "apt-get install -y simple-obfs",
  "obfs-local": "apt-get install -y simple-obfs",
  "ss-v2ray-plugin": "apt-get install -y shadowsocks-v2ray-plugin",
  "chromium": "apt-get install -y --no-install-recommends chromium",
};

/** Port readiness: this many TCP connection attempts, this far apart. */
const READY_ATTEMPTS = 100;
const READY_INTERVAL_MS = 50;
/** Tries with a fresh port when a process loses the race for the one picked. */
const START_ATTEMPTS = 3;

/**
 * Looks `name` up in the directories of `searchPath` (default: PATH, then the folders of
 * `.ci/peers.sh`) and returns the first executable file found, or `undefined`.
 */
export function findPeer(
  name: string,
  searchPath: string = `${Deno.env.get("PATH") ?? ""}:${peersSearchPath()}`,
): string | undefined {
  for (const dir of searchPath.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir.replace(/\/+$/, "")}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(candidate);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        continue;
      }
      throw error;
    }
    if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return candidate;
  }
  return undefined;
}

/** True when the environment says this is a CI run (`CI=true`). */
export function isCi(): boolean {
  return Deno.env.get("CI") === "true";
}

/** The message for binaries that are missing, with the commands that install them. */
export function missingPeersMessage(missing: readonly PeerName[]): string {
  const hints = [...new Set(missing.map((name) => INSTALL_HINT[name]))].join("; ");
  return `Missing ${missing.map((name) => `"${name}"`).join(", ")} on PATH: install with ${hints}`;
}

/**
 * Where `.ci/peers.sh` puts the peers it builds (one `NAME-VERSION/bin` folder each), searched
 * after PATH so that `deno task test` finds them without a PATH change.
 */
export function peersSearchPath(): string {
  const root = Deno.env.get("SSDENO_PEERS_DIR") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/ssdeno-peers`;
  const dirs: string[] = [];
  try {
    for (const entry of Deno.readDirSync(root)) {
      if (entry.isDirectory) dirs.push(`${root}/${entry.name}/bin`);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return dirs.sort().reverse().join(":");
}

/** The paths of the peers a test asked for. */
export type PeerPaths = Readonly<Record<PeerName, string>>;

/** A test that needs external binaries; see `peerTest`. */
export interface PeerTestDefinition {
  name: string;
  /** Binaries the test runs; each is looked up on PATH when the test is registered. */
  peers: readonly PeerName[];
  fn: (t: Deno.TestContext, paths: PeerPaths) => void | Promise<void>;
}

/**
 * Registers a `Deno.test` that runs only when its peers are installed. When any is missing:
 * under `CI=true` the test runs and fails with the install hint; otherwise it is ignored and a
 * "skipped" line is printed. Sanitizers stay on.
 */
export function peerTest(definition: PeerTestDefinition): void {
  const paths: Partial<Record<PeerName, string>> = {};
  const missing: PeerName[] = [];
  for (const name of definition.peers) {
    const found = findPeer(name);
    if (found === undefined) missing.push(name);
    else paths[name] = found;
  }
  const ci = isCi();
  if (missing.length > 0 && !ci) {
    console.log(
      `skipped "${definition.name}": ${missingPeersMessage(missing)} (set CI=true to fail instead)`,
    );
  }
  Deno.test({
    name: definition.name,
    ignore: missing.length > 0 && !ci,
    async fn(t) {
      if (missing.length > 0) throw new Error(missingPeersMessage(missing));
      await definition.fn(t, paths as PeerPaths);
    },
  });
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago (listen on 0, read, close). */
export function freePort(hostname = "127.0.0.1"): number {
  using listener = Deno.listen({ hostname, port: 0 });
  return listener.addr.port;
}

/**
 * Resolves once `hostname:port` accepts a TCP connection; throws after `attempts` tries
 * `intervalMs` apart, or as soon as `exited` resolves (the process died).
 */
export async function waitForTcpPort(
  port: number,
  options: {
    hostname?: string;
    attempts?: number;
    intervalMs?: number;
    exited?: Promise<unknown>;
  } = {},
): Promise<void> {
  const hostname = options.hostname ?? "127.0.0.1";
  const attempts = options.attempts ?? READY_ATTEMPTS;
  const intervalMs = options.intervalMs ?? READY_INTERVAL_MS;
  let exited = false;
  options.exited?.then(() => exited = true, () => exited = true);
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (exited) throw new Error(`Process exited before ${hostname}:${port} accepted connections`);
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(
    `${hostname}:${port} did not accept connections after ${attempts} tries ${intervalMs} ms apart`,
    { cause: lastError },
  );
}

/** A running libev process. `await using` stops it. */
export interface PeerProcess extends AsyncDisposable {
  readonly binary: string;
  /** The arguments it runs with, password included (`output()` hides it). */
  readonly args: readonly string[];
  readonly pid: number;
  /** The TCP (and, with `udp`, UDP) port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Its stdout and stderr so far (the last 64 KiB), for failure messages. */
  output(): string;
  /** Sends SIGTERM (SIGKILL after 5 s) and waits for the exit. Idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Options every libev process takes. */
export interface LibevOptions {
  method: string;
  password: string;
  /** Also relay UDP (`-u`). Default false. */
  udp?: boolean;
  /** Idle timeout in seconds (`-t`). Default 60. */
  timeout?: number;
  /** Log every connection (`-v`). Default false. */
  verbose?: boolean;
  /** Binary path; default: looked up on PATH. */
  binary?: string;
  /** A SIP003 plugin (`--plugin`) and its options (`--plugin-opts`). */
  plugin?: string;
  pluginOpts?: string;
}

/** Starts `ss-server -s 127.0.0.1 -p PORT -k PASSWORD -m METHOD` on a free port. */
export function startSsServer(options: LibevOptions): Promise<PeerProcess> {
  return startLibev("ss-server", options, (port) => ["-s", "127.0.0.1", "-p", String(port)]);
}

/** Starts `ss-local -s 127.0.0.1 -p SERVER_PORT -b 127.0.0.1 -l PORT ...` on a free port. */
export function startSsLocal(
  serverPort: number,
  options: LibevOptions & { server?: string },
): Promise<PeerProcess> {
  return startLibev("ss-local", options, (port) => [
    ...["-s", options.server ?? "127.0.0.1", "-p", String(serverPort)],
    ...["-b", "127.0.0.1", "-l", String(port)],
  ]);
}

/**
 * Starts `ss-tunnel ... -L TARGET` (TARGET is `host:port`) on a free port. The readiness probe
 * makes ss-tunnel open one session to the server (and TARGET) before this resolves: count it.
 */
export function startSsTunnel(
  serverPort: number,
  options: LibevOptions & { target: string; server?: string },
): Promise<PeerProcess> {
  return startLibev("ss-tunnel", options, (port) => [
    ...["-s", options.server ?? "127.0.0.1", "-p", String(serverPort)],
    ...["-b", "127.0.0.1", "-l", String(port), "-L", options.target],
  ]);
}

/** Starts a libev binary with `addressArgs(port)` plus the flags every libev binary takes. */
function startLibev(
  name: PeerName,
  options: LibevOptions,
  addressArgs: (port: number) => string[],
): Promise<PeerProcess> {
  return startPeer(name, {
    ...(options.binary === undefined ? {} : { binary: options.binary }),
    args: (port) => [
      ...addressArgs(port),
      ...["-k", options.password, "-m", options.method, "-t", String(options.timeout ?? 60)],
      ...(options.udp ? ["-u"] : []),
      ...(options.verbose ? ["-v"] : []),
      ...(options.plugin ? ["--plugin", options.plugin] : []),
      ...(options.pluginOpts ? ["--plugin-opts", options.pluginOpts] : []),
    ],
  });
}

/** How to start one peer process; see `startPeer`. */
export interface PeerLaunch {
  /**
   * The arguments for a process that listens on 127.0.0.1:`port`. `dir` is a new temporary
   * folder for config files, removed when the process stops.
   */
  args(port: number, dir: string): string[] | Promise<string[]>;
  /** Binary path; default: looked up with `findPeer`. */
  binary?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Starts a peer on a free port and waits until the port accepts TCP. A process that exits early
 * (the port was taken meanwhile) is retried on a new port, up to 3 times; then the error
 * carries its output.
 */
export async function startPeer(name: PeerName, launch: PeerLaunch): Promise<PeerProcess> {
  const binary = launch.binary ?? findPeer(name);
  if (binary === undefined) throw new Error(missingPeersMessage([name]));
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: `ssdeno-${name}-` });
    const args = await launch.args(port, dir);
    const peer = spawnPeer(binary, args, port, dir, launch.env);
    try {
      await waitForTcpPort(port, { exited: peer.exited });
      return peer;
    } catch (error) {
      await peer.stop();
      lastError = new Error(
        `${name} did not start: ${(error as Error).message}\n${peer.output()}`,
        {
          cause: error,
        },
      );
    }
  }
  throw lastError;
}

function spawnPeer(
  binary: string,
  args: string[],
  port: number,
  dir: string,
  env: Record<string, string> = {},
): PeerProcess & { exited: Promise<Deno.CommandStatus> } {
  const child = spawnCollected(binary, args, env);
  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      const status = await child.end();
      await Deno.remove(dir, { recursive: true });
      return status;
    })();
  return {
    binary,
    args,
    pid: child.pid,
    port,
    exited: child.exited,
    output: () => `--- ${binary} ${redact(args).join(" ")} (pid ${child.pid}) ---\n${child.log()}`,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** The argument list with the password after `-k` or `--password` hidden. */
function redact(args: readonly string[]): string[] {
  return args.map((arg, i) => (i > 0 && ["-k", "--password"].includes(args[i - 1]!) ? "***" : arg));
}
