/**
 * What fleet mode costs per connection (issue 17): the same `ssdeno server` standalone and in a
 * fleet (one local redis-server), measured in one run, chains interleaved.
 *
 * ```
 * client ─▶ sslocal (rust, tunnel) ══AEAD══▶ ssdeno server [─▶ Redis] ─▶ echo
 * ```
 *
 * For each method: wall time of N sequential short connections (connect, one byte, echo, close)
 * through each server, median of the repetitions, and the fleet/standalone ratio; the Redis
 * commands per connection (INFO commandstats, before and after) and Redis's CPU per 1000
 * connections. The load generator is shadowsocks-rust's sslocal, the same for both servers.
 *
 * Run: `deno run -A bench/fleet.ts [--count N] [--repeat N] [--methods a,b]` (defaults 2000,
 * 5, aes-128-gcm and 2022-blake3-aes-128-gcm). Needs redis-server and sslocal
 * (`.ci/peers.sh`).
 * @module
 */
import { Redis } from "npm:ioredis@6.0.0";
import { findPeer, freePort, waitForTcpPort } from "../tests/interop/_peers.ts";
import { serveV8Flags, spawnCollected } from "../tests/_child.ts";
import { findRedisServer, startRedis } from "../tests/service/_redis.ts";
import { closeQuietly, startEcho } from "./echo_target.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

function flag(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && Deno.args[at + 1] !== undefined ? Deno.args[at + 1]! : fallback;
}

const count = Number(flag("count", "2000"));
const repeat = Number(flag("repeat", "5"));
const methods = flag("methods", "aes-128-gcm,2022-blake3-aes-128-gcm").split(",");

const redisBinary = findRedisServer();
const sslocal = findPeer("sslocal");
if (!redisBinary || !sslocal) {
  console.error("bench/fleet.ts needs redis-server and shadowsocks-rust's sslocal (.ci/peers.sh)");
  Deno.exit(1);
}

type Child = ReturnType<typeof spawnCollected>;
const children: Child[] = [];
const spawn = (binary: string, args: string[]) => {
  const child = spawnCollected(binary, args);
  children.push(child);
  return child;
};

/** One connection: connect, one byte, its echo, close. */
async function once(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(Uint8Array.of(1));
    const got = new Uint8Array(1);
    if ((await conn.read(got)) !== 1) throw new Error("no echo");
  } finally {
    closeQuietly(conn);
  }
}

async function setupMs(port: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await once(port);
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Commands Redis ran so far (INFO commandstats) and its CPU seconds (INFO cpu). */
async function redisCounters(client: Redis): Promise<{ commands: number; cpu: number }> {
  const stats = await client.info("commandstats");
  const commands = [...stats.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  const cpu = await client.info("cpu");
  const seconds = (name: string) => Number(cpu.match(new RegExp(`${name}:([\\d.]+)`))?.[1] ?? 0);
  return { commands, cpu: seconds("used_cpu_user") + seconds("used_cpu_sys") };
}

const echo = startEcho("127.0.0.1");
const redisServer = await startRedis(redisBinary);
const redisPort = redisServer.port;
const redis = new Redis(redisServer.url);
const dir = await Deno.makeTempDir({ prefix: "ssdeno-bench-fleet-" });

const rows: string[] = [];
try {
  for (const method of methods) {
    const password = method.startsWith("2022-")
      ? btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
      : "bench-fleet-password";
    const chains: { label: string; tunnel: number }[] = [];
    for (const label of ["standalone", "fleet"]) {
      const port = freePort();
      const config = `${dir}/${label}-${method}.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          server: "127.0.0.1",
          server_port: port,
          method,
          password,
          workers: 1,
          ...(label === "fleet"
            ? { fleet: { redis_url: `redis://127.0.0.1:${redisPort}`, node: "bench" } }
            : {}),
        }),
      );
      spawn(Deno.execPath(), [
        ...[
          "run",
          "-A",
          "--quiet",
          "--config",
          CONFIG,
          ...serveV8Flags(),
        ],
        ...[MAIN, "server", "-c", config, "--allow-private-targets", "-q"],
      ]);
      await waitForTcpPort(port);
      const tunnel = freePort();
      spawn(sslocal, [
        ...["--protocol", "tunnel", "-b", `127.0.0.1:${tunnel}`],
        ...["--forward-addr", `127.0.0.1:${echo.port}`, "-s", `127.0.0.1:${port}`],
        ...["-m", method, "-k", password],
      ]);
      await waitForTcpPort(tunnel);
      for (let i = 0; i < 50; i++) await once(tunnel); // warm-up
      chains.push({ label, tunnel });
    }
    const times: Record<string, number[]> = { standalone: [], fleet: [] };
    let commands = 0;
    let cpu = 0;
    for (let r = 0; r < repeat; r++) {
      for (const { label, tunnel } of r % 2 === 0 ? chains : [...chains].reverse()) {
        const before = await redisCounters(redis);
        times[label]!.push(await setupMs(tunnel));
        const after = await redisCounters(redis);
        if (label === "fleet") {
          commands += after.commands - before.commands;
          cpu += after.cpu - before.cpu;
        }
      }
    }
    const standalone = median(times.standalone!);
    const fleet = median(times.fleet!);
    const connections = count * repeat;
    const range = (values: number[]) =>
      `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`;
    rows.push(
      `| ${method} | ${standalone.toFixed(0)} (${range(times.standalone!)}) | ` +
        `${fleet.toFixed(0)} (${range(times.fleet!)}) | ${(fleet / standalone).toFixed(2)} | ` +
        `${((fleet - standalone) / count * 1000).toFixed(0)} | ` +
        `${(commands / connections).toFixed(2)} | ${(cpu / connections * 1000).toFixed(2)} |`,
    );
    console.log(rows.at(-1));
  }
  console.log(
    `\nConnection setup, ${count} sequential connections (connect, 1 byte, echo, close), ` +
      `median of ${repeat} (min–max), ms; client: shadowsocks-rust sslocal (tunnel):\n`,
  );
  console.log(
    "| method | standalone | fleet | fleet/standalone | added µs per connection | Redis commands per connection | Redis CPU s per 1000 connections |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  rows.forEach((row) => console.log(row));
} finally {
  redis.disconnect();
  for (const child of children.reverse()) await child.end("SIGTERM");
  await redisServer.stop();
  await echo.close();
  await Deno.remove(dir, { recursive: true });
}
