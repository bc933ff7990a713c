/**
 * Paired A/B of connection setup between two ssdeno builds: each build runs a server and a tunnel
 * (as `deno task serve` and `deno task tunnel` would, with the V8 flags of its own `serve` task),
 * and the two chains take turns at N sequential connections (connect, one byte, echo, close),
 * the order alternating pair by pair. It prints the wall time and the CPU time (user + system of
 * server and tunnel, from /proc) per connection of every run, and the median of the pairs' B/A
 * ratios. Pairing cancels most of the drift that makes single benchmark runs on a shared 2-core
 * machine differ by ±5 % (bench/results.md, "Fourth pass"); repeats of the same build agree within
 * about ±4 %, so smaller ratios are not a measured difference.
 *
 * Run: `deno run -A bench/setup_pairs.ts --a DIR --b DIR [--pairs 6] [--count 2000]
 * [--warmup 1000] [--method aes-128-gcm] [--flags-a FLAGS] [--flags-b FLAGS]`, where DIR holds a
 * checkout (main.ts and deno.json) and FLAGS replaces that build's `--v8-flags=…` (e.g. to try a
 * flag on the same code: `--a . --b . --flags-b --v8-flags=…`). Linux only (/proc).
 * @module
 */
import { parseArgs } from "node:util";
import { findMethod } from "../crypto/methods.ts";
import { generatePsk } from "../crypto/kdf2022.ts";
import { serveV8Flags } from "../tests/_child.ts";
import { freePort, waitForTcpPort } from "../tests/interop/_peers.ts";
import { startEcho } from "./echo_target.ts";
import { measureSetup, readCpuSeconds } from "./throughput.ts";

const HOST = "127.0.0.1";

interface Build {
  readonly label: string;
  readonly port: number;
  readonly children: Deno.ChildProcess[];
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    a: { type: "string" },
    b: { type: "string" },
    pairs: { type: "string", default: "6" },
    count: { type: "string", default: "2000" },
    warmup: { type: "string", default: "1000" },
    method: { type: "string", default: "aes-128-gcm" },
    "flags-a": { type: "string" },
    "flags-b": { type: "string" },
  },
});
const method = findMethod(values.method!);
const pairs = Number(values.pairs);
const count = Number(values.count);
const warmup = Number(values.warmup);
if (!values.a || !values.b || !method || !(pairs >= 1) || !(count >= 1) || !(warmup >= 0)) {
  console.error(
    "usage: setup_pairs.ts --a DIR --b DIR [--pairs N] [--count N] [--warmup N] [--method M] " +
      "[--flags-a FLAGS] [--flags-b FLAGS]",
  );
  Deno.exit(2);
}
const password = method.family === "aead2022" ? generatePsk(method) : "setup-pairs-password";

const echo = startEcho(HOST);
const builds: Build[] = [];
try {
  builds.push(await startBuild("A", values.a, values["flags-a"]));
  builds.push(await startBuild("B", values.b, values["flags-b"]));
  for (const build of builds) await measureSetup(build.port, warmup);
  const wall: number[][] = [[], []];
  const cpu: number[][] = [[], []];
  for (let pair = 0; pair < pairs; pair++) {
    for (const index of pair % 2 === 0 ? [0, 1] : [1, 0]) {
      const build = builds[index]!;
      const cpuBefore = await cpuSeconds(build);
      const ms = await measureSetup(build.port, count);
      wall[index]!.push(ms * 1000 / count);
      cpu[index]!.push((await cpuSeconds(build) - cpuBefore) * 1e6 / count);
    }
  }
  const show = (values: number[]) => values.map((v) => v.toFixed(0)).join(" ");
  for (const [index, build] of builds.entries()) {
    console.log(
      `${build.label} µs/connection: wall ${show(wall[index]!)} | CPU ${show(cpu[index]!)}`,
    );
  }
  const ratios = (samples: number[][]) => samples[1]!.map((b, i) => b / samples[0]![i]!);
  console.log(
    `B/A, median of ${pairs} paired ratios: wall ${median(ratios(wall)).toFixed(3)}, ` +
      `CPU ${median(ratios(cpu)).toFixed(3)} (${values.method}, ${count} connections a run)`,
  );
} finally {
  for (const build of builds) await stopBuild(build);
  await echo.close();
}

/** A build's server and tunnel, with the V8 flags of its `serve` task unless `flags` is given. */
async function startBuild(label: string, dir: string, flags: string | undefined): Promise<Build> {
  const runtime = flags === undefined ? serveV8Flags(`${dir}/deno.json`) : [flags];
  const serverPort = freePort(HOST);
  const tunnelPort = freePort(HOST);
  const common = ["-k", password, "-m", method!.name, "-q"];
  const spawn = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...runtime, "main.ts", ...args],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
  const build: Build = { label, port: tunnelPort, children: [] };
  build.children.push(spawn([
    "server",
    ...["-s", HOST, "-p", String(serverPort), "--allow-private-targets", ...common],
  ]));
  build.children.push(spawn([
    "tunnel",
    ...["-s", HOST, "-p", String(serverPort), "-b", HOST, "-l", String(tunnelPort)],
    ...["-L", `${HOST}:${echo.port}`, ...common],
  ]));
  try {
    await waitForTcpPort(serverPort);
    await waitForTcpPort(tunnelPort);
  } catch (error) {
    await stopBuild(build);
    throw error;
  }
  return build;
}

async function stopBuild(build: Build): Promise<void> {
  for (const child of build.children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  await Promise.all(build.children.map((child) => child.status));
}

/** Server and tunnel CPU time so far (user + system), seconds. */
async function cpuSeconds(build: Build): Promise<number> {
  const each = await Promise.all(build.children.map((child) => readCpuSeconds(child.pid)));
  return each.reduce((sum, seconds) => sum + seconds, 0);
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}
