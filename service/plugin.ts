/**
 * SIP003 plugins (NOTES.md §10): a plugin is a separate program that carries our TCP traffic
 * inside its own (an HTTP or TLS look-alike, a websocket, …). It is told where to listen and
 * where to send through four environment variables:
 *
 * ```
 *   server: client ══▶ plugin on SS_REMOTE_HOST:SS_REMOTE_PORT ─▶ ssdeno on SS_LOCAL_HOST:SS_LOCAL_PORT
 *   local:  ssdeno ─▶ plugin on SS_LOCAL_HOST:SS_LOCAL_PORT ══▶ the server's plugin on SS_REMOTE_*
 * ```
 *
 * plus `SS_PLUGIN_OPTIONS` (`plugin_opts`). Its output goes to our log under its name; if it
 * exits, it is started again after 1 s, doubling up to 30 s, at most `RESTART_BUDGET` times in
 * `RESTART_WINDOW_MS`, then we give up loudly (the error line, and `failed` resolves). It is
 * ended with us, by its PID: SIGTERM, then SIGKILL after 2 s. UDP does not go through a plugin
 * (SIP003) unless `plugin_mode` is `tcp_and_udp` (SIP003u): then the plugin also takes UDP on
 * the same host and port numbers.
 * @module
 */
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";
import { bindTcpAndUdp } from "../relay/listen.ts";

const RESTART_BUDGET = 5;
const RESTART_WINDOW_MS = 60_000;
const FIRST_RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;
const STOP_GRACE_MS = 2000;

/** Debian ships shadowsocks' v2ray-plugin as `ss-v2ray-plugin`: a config naming either works. */
const ALIASES: Record<string, string> = { "v2ray-plugin": "ss-v2ray-plugin" };

export interface PluginSpec {
  /** The plugin's name or path (`plugin`). */
  readonly name: string;
  /** `plugin_opts`, passed as SS_PLUGIN_OPTIONS. */
  readonly options?: string;
  /** `plugin_args`: extra command-line arguments. */
  readonly args?: readonly string[];
  /** `plugin_mode`: `tcp_and_udp` when the plugin carries UDP too (SIP003u). */
  readonly mode?: "tcp_only" | "tcp_and_udp";
}

export interface PluginAddresses {
  readonly remoteHost: string;
  readonly remotePort: number;
  readonly localHost: string;
  readonly localPort: number;
}

export interface RunningPlugin {
  readonly binary: string;
  /** The PID of the plugin process running now. */
  readonly pid: number | undefined;
  /** Resolves when the restart budget is spent: the plugin keeps failing. */
  readonly failed: Promise<void>;
  close(): Promise<void>;
}

/** Finds the plugin's binary: a path as given, else on PATH (then its Debian alias). */
export function findPlugin(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  for (const candidate of [name, ALIASES[name]]) {
    if (candidate === undefined) continue;
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      if (dir !== "" && isExecutable(`${dir}/${candidate}`)) return `${dir}/${candidate}`;
    }
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

/** Starts the plugin; throws at once when its binary cannot be found. */
export function startPlugin(
  spec: PluginSpec,
  addresses: PluginAddresses,
  logger: Logger,
  timing: { firstRestartDelayMs?: number } = {},
): RunningPlugin {
  const binary = findPlugin(spec.name);
  if (binary === undefined) {
    throw new Error(
      `Plugin "${spec.name}" not found on PATH: install it (e.g. apt-get install simple-obfs ` +
        `or shadowsocks-v2ray-plugin) or give its full path`,
    );
  }
  const label = `plugin ${spec.name}`;
  const env = {
    SS_REMOTE_HOST: addresses.remoteHost,
    SS_REMOTE_PORT: `${addresses.remotePort}`,
    SS_LOCAL_HOST: addresses.localHost,
    SS_LOCAL_PORT: `${addresses.localPort}`,
    SS_PLUGIN_OPTIONS: spec.options ?? "",
  };
  let child: Deno.ChildProcess | undefined;
  let stopping = false;
  const failed = Promise.withResolvers<void>();
  const starts: number[] = [];
  let delay = timing.firstRestartDelayMs ?? FIRST_RESTART_DELAY_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const forward = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line.trim() !== "") logger.info(`${label}: ${line.trim()}`);
    }
    if (rest.trim() !== "") logger.info(`${label}: ${rest.trim()}`);
  };

  const run = () => {
    starts.push(Date.now());
    child = new Deno.Command(binary, {
      args: [...(spec.args ?? [])],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const current = child;
    const output = Promise.all([forward(current.stdout), forward(current.stderr)]);
    current.status.then(async (status) => {
      await output;
      if (stopping) return;
      const recent = starts.filter((at) => Date.now() - at < RESTART_WINDOW_MS);
      if (recent.length >= RESTART_BUDGET) {
        logger.error(
          `${label} exited (code ${status.code}) ${recent.length} times in a minute: giving up; ` +
            `traffic through it stops until ssdeno is restarted`,
        );
        failed.resolve();
        return;
      }
      logger.warn(`${label} exited (code ${status.code}); starting it again in ${delay / 1000} s`);
      timer = setTimeout(run, delay);
      delay = Math.min(MAX_RESTART_DELAY_MS, delay * 2);
    });
  };
  run();
  logger.info(
    `${label} (${binary}): ${addresses.remoteHost}:${addresses.remotePort} ↔ ` +
      `${addresses.localHost}:${addresses.localPort}`,
  );

  return {
    binary,
    get pid() {
      return child?.pid;
    },
    failed: failed.promise,
    async close() {
      stopping = true;
      clearTimeout(timer);
      const current = child;
      if (!current) return;
      const kill = (signal: Deno.Signal) => {
        try {
          current.kill(signal);
        } catch (error) {
          // Already exited: kill throws a TypeError, and there is nothing left to end.
          if (!(error instanceof TypeError)) logger.debug(`${label}: ${errorMessage(error)}`);
        }
      };
      kill("SIGTERM");
      const killTimer = setTimeout(() => kill("SIGKILL"), STOP_GRACE_MS);
      await current.status;
      clearTimeout(killTimer);
    },
  };
}

/**
 * The client side of a plugin (local, tunnel): it listens on a free loopback port and carries
 * what arrives there to the server. Returns where the outbound should dial instead.
 */
export function startClientPlugin(
  spec: PluginSpec,
  server: { host: string; port: number },
  logger: Logger,
): { host: string; port: number; plugin: RunningPlugin } {
  // A port free for TCP, and for UDP too when the plugin carries UDP (SIP003u).
  const probe = bindTcpAndUdp("127.0.0.1", 0, { tcp: true, udp: spec.mode === "tcp_and_udp" });
  const port = probe.listener!.addr.port;
  probe.listener!.close();
  probe.socket?.close();
  const plugin = startPlugin(spec, {
    remoteHost: server.host,
    remotePort: server.port,
    localHost: "127.0.0.1",
    localPort: port,
  }, logger);
  return { host: "127.0.0.1", port, plugin };
}
