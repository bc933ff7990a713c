/**
 * The Redis test kit: a real `redis-server` (Debian's, one process per test, on a free loopback
 * port, no persistence), which a test can crash (SIGKILL), freeze (SIGSTOP, a network partition
 * as the client sees it), thaw and start again, empty, on the same port.
 *
 * `startRedisCluster` makes a Redis Cluster of such servers for the cluster-mode tests.
 *
 * Missing redis-server: with `CI=true` the test fails with the install hint; elsewhere it is
 * registered as ignored and a line on stdout says why (as `dnsmasqTest` does).
 *
 * ```ts
 * redisTest("answers", async (t, binary) => {
 *   await using redis = await startRedis(binary);
 *   // connect to redis.url ...
 * });
 * ```
 * @module
 */
import { findPeer, freePort, isCi, waitForTcpPort } from "../interop/_peers.ts";
import { spawnCollected } from "../_child.ts";

const INSTALL_HINT = "apt-get install -y --no-install-recommends redis-server";
/** Tries with a fresh port when redis-server loses the race for the one picked. */
const START_ATTEMPTS = 3;

/** redis-server lives in /usr/bin on Debian; /usr/sbin as well for odd PATHs. */
export function findRedisServer(): string | undefined {
  return findPeer("redis-server", `${Deno.env.get("PATH") ?? ""}:/usr/bin:/usr/sbin`);
}

/** Registers a test that needs redis-server; see the module doc for what happens when missing. */
export function redisTest(
  name: string,
  fn: (t: Deno.TestContext, binary: string) => Promise<void>,
): void {
  const binary = findRedisServer();
  const ci = isCi();
  if (binary === undefined && !ci) {
    console.log(`skipped "${name}": redis-server not found: install with ${INSTALL_HINT}`);
  }
  Deno.test({
    name,
    ignore: binary === undefined && !ci,
    async fn(t) {
      if (binary === undefined) {
        throw new Error(`redis-server not found: install with ${INSTALL_HINT}`);
      }
      await fn(t, binary);
    },
  });
}

/** A running redis-server. `await using` stops it. */
export interface RedisServer extends AsyncDisposable {
  readonly pid: number;
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (`rediss://` with TLS). */
  readonly url: string;
  /** Its log so far, for failure messages. */
  output(): string;
  /** SIGKILL, as a crash: no goodbye to clients. Waits for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the port stays open but nothing answers, as behind a dead link. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** SIGTERM (SIGKILL after 5 s) to its PID, and waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startRedis}. */
export interface StartRedisOptions {
  /** The port; default a free one. A given port is not retried elsewhere (a restart needs it). */
  port?: number;
  /** More `--name value` arguments, e.g. `["--notify-keyspace-events", "KA"]`. */
  args?: readonly string[];
  /** TLS only (the plain port closed), with these PEM files; clients are not asked for one. */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/**
 * Starts redis-server in the foreground on 127.0.0.1, without persistence (`--save ''`,
 * `--appendonly no`) in a temporary directory, and waits until it accepts TCP.
 */
export async function startRedis(
  binary: string,
  options: StartRedisOptions = {},
): Promise<RedisServer> {
  let lastError: unknown;
  const attempts = options.port === undefined ? START_ATTEMPTS : 1;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? freePort();
    const dir = await Deno.makeTempDir({ prefix: "ssdeno-redis-" });
    const args = [
      ...(options.tls
        ? [
          "--port",
          "0",
          "--tls-port",
          String(port),
          "--tls-cert-file",
          options.tls.certFile,
          "--tls-key-file",
          options.tls.keyFile,
          "--tls-ca-cert-file",
          options.tls.caFile,
          "--tls-auth-clients",
          "no",
        ]
        : ["--port", String(port)]),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
      ...(options.args ?? []),
    ];
    const server = spawn(binary, args, port, dir, options.tls ? "rediss" : "redis");
    try {
      await waitForTcpPort(port, { exited: server.exited });
      return server;
    } catch (error) {
      await server.stop();
      lastError = new Error(
        `redis-server did not start: ${(error as Error).message}\n${server.output()}`,
        { cause: error },
      );
    }
  }
  throw lastError;
}

function spawn(
  binary: string,
  args: string[],
  port: number,
  dir: string,
  scheme: "redis" | "rediss",
): RedisServer & { exited: Promise<unknown> } {
  const child = spawnCollected(binary, args);
  let ending: Promise<void> | undefined;
  const end = (first: Deno.Signal) =>
    ending ??= (async () => {
      await child.end(first);
      await Deno.remove(dir, { recursive: true });
    })();
  const stop = () => end("SIGTERM");
  return {
    pid: child.pid,
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    exited: child.exited,
    output: () => `--- redis-server ${args.join(" ")} (pid ${child.pid}) ---\n${child.log()}`,
    kill: () => end("SIGKILL"),
    pause: () => child.signal("SIGSTOP"),
    resume: () => child.signal("SIGCONT"),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A Redis Cluster of several masters (no replicas); `await using` stops every process. */
export interface RedisCluster extends AsyncDisposable {
  readonly servers: readonly RedisServer[];
  /** One `redis://` URL per master: the seed nodes. */
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

/** Slots in a Redis Cluster. */
const CLUSTER_SLOTS = 16384;

/**
 * Starts `masters` redis-servers in cluster mode (each with its bus on a free port of its own),
 * splits the 16 384 slots evenly between them, introduces them and waits until every node says
 * `cluster_state:ok`. Needs Redis 7 (`--cluster-port`, `CLUSTER ADDSLOTSRANGE`).
 */
export async function startRedisCluster(binary: string, masters = 3): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  const busPorts: number[] = [];
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const busPort = freePort();
      servers.push(
        await startRedis(binary, {
          args: ["--cluster-enabled", "yes", "--cluster-port", String(busPort)],
        }),
      );
      busPorts.push(busPort);
    }
    await Promise.all(servers.map(async (server, i) => {
      const first = Math.floor(CLUSTER_SLOTS * i / masters);
      const last = Math.floor(CLUSTER_SLOTS * (i + 1) / masters) - 1;
      await redisCommand(server.port, ["CLUSTER", "ADDSLOTSRANGE", String(first), String(last)]);
    }));
    for (let i = 1; i < masters; i++) {
      await redisCommand(servers[0]!.port, [
        "CLUSTER",
        "MEET",
        "127.0.0.1",
        String(servers[i]!.port),
        String(busPorts[i]),
      ]);
    }
    const deadline = Date.now() + 10_000;
    for (const server of servers) {
      for (;;) {
        const info = await redisCommand(server.port, ["CLUSTER", "INFO"]);
        if (info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${masters}`)) {
          break;
        }
        if (Date.now() > deadline) throw new Error(`Cluster not ready:\n${info}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    servers,
    urls: servers.map((server) => server.url),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Sends one command in RESP and returns the reply's text (enough for the status and bulk
 * replies of cluster set-up; no client library needed).
 */
async function redisCommand(port: number, args: readonly string[]): Promise<string> {
  const encoder = new TextEncoder();
  const request = `*${args.length}\r\n` +
    args.map((arg) => `$${encoder.encode(arg).length}\r\n${arg}\r\n`).join("");
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(request));
  const decoder = new TextDecoder();
  let reply = "";
  const buffer = new Uint8Array(16 * 1024);
  // A reply is complete when its announced length arrived (bulk) or its line ended (status).
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    reply += decoder.decode(buffer.subarray(0, n), { stream: true });
    const bulk = reply.match(/^\$(\d+)\r\n/);
    if (bulk && encoder.encode(reply).length >= bulk[0].length + Number(bulk[1]) + 2) break;
    if (!bulk && reply.endsWith("\r\n")) break;
  }
  if (reply.startsWith("-")) throw new Error(`Redis refused ${args.join(" ")}: ${reply.trim()}`);
  return reply;
}

/** PEM files for a TLS redis-server on 127.0.0.1, signed by a CA made for the test. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** Debian's openssl, which makes the test CA; undefined when missing. */
export function findOpenssl(): string | undefined {
  return findPeer("openssl", `${Deno.env.get("PATH") ?? ""}:/usr/bin`);
}

/** Makes a CA and a server certificate for 127.0.0.1 (two days) in `dir` with `openssl`. */
export async function makeTlsFiles(openssl: string, dir: string): Promise<TlsFiles> {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(openssl, { args, cwd: dir, stdin: "null" }).output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  await run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=ssdeno test CA",
  );
  await run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
  await run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return { certFile: `${dir}/server.crt`, keyFile: `${dir}/server.key`, caFile: `${dir}/ca.crt` };
}
