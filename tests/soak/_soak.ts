/**
 * Shared parts of the soak tests: the mode, process figures, an echo target in its own process,
 * bounded waits and a bounded-concurrency runner.
 *
 * Modes: short by default (a few hundred connections for a few seconds, part of `deno task
 * test`); `SSDENO_SOAK=long` for the figures worth reporting (tests/soak/run_long.ts). Every
 * test prints its figures as one `soak <name>: key=value ...` line so they land in CI logs.
 * @module
 */
import { serveV8Flags } from "../_child.ts";

/** True under `SSDENO_SOAK=long`. */
export const LONG = Deno.env.get("SSDENO_SOAK") === "long";

/** The short-mode or the long-mode value. */
export function byMode<T>(short: T, long: T): T {
  return LONG ? long : short;
}

export const METHOD = "aes-128-gcm";
export const PASSWORD = "soak-password";

/** Prints one figures line: `soak NAME: key=value key=value`. */
export function report(name: string, figures: Record<string, string | number>): void {
  const text = Object.entries(figures)
    .map(([key, value]) => `${key}=${typeof value === "number" ? round(value) : value}`)
    .join(" ");
  console.log(`soak ${name}: ${text}`);
}

function round(value: number): string {
  return Number.isInteger(value) ? `${value}` : value.toFixed(value < 10 ? 2 : 1);
}

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdin: "null", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return new TextDecoder().decode(output.stdout);
}

/**
 * Resident memory of process `pid` in KiB, read through `cat`: Deno wants --allow-all to read
 * another process's /proc files itself.
 */
export async function rssKiB(pid: number): Promise<number> {
  const status = await run("cat", [`/proc/${pid}/status`]);
  const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`No VmRSS line for process ${pid}`);
  return Number(kib);
}

/** This process's open-file limits, as a child shell inherits them. */
export async function fileLimits(): Promise<{ soft: number; hard: number }> {
  const [soft, hard] = (await run("bash", ["-c", "ulimit -Sn; ulimit -Hn"])).trim().split("\n");
  const parse = (text: string | undefined) => text === "unlimited" ? Infinity : Number(text);
  return { soft: parse(soft), hard: parse(hard) };
}

/** The `p`th percentile (0–100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Resolves after `ms` (pacing of traffic, never a wait for a condition). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 20 ms; throws after `timeoutMs` naming `what`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > until) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await pause(20);
  }
}

/**
 * Runs `task(0) … task(count - 1)` with at most `concurrency` running at once; resolves when all
 * have settled, with their results in order.
 */
export async function runBounded<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      try {
        results[index] = { status: "fulfilled", value: await task(index) };
      } catch (reason) {
        results[index] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/**
 * Closes `conn` if `promise` has not settled within `ms`, so a read or write stuck on a peer
 * fails instead of hanging; the error then says it timed out.
 */
export async function within<T>(conn: Deno.Conn, ms: number, what: string, promise: Promise<T>) {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, ms);
  try {
    return await promise;
  } catch (error) {
    if (timedOut) throw new Error(`${what}: no progress in ${ms} ms`, { cause: error });
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** A value of the server's Prometheus endpoint (0 when the series is absent). */
export async function metric(port: number, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** A running `ssdeno` subprocess (see `spawnServing`). */
export interface ServingProcess extends AsyncDisposable {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  /** Everything it has logged so far. */
  log(): string;
  kill(signal: Deno.Signal): void;
  /** SIGKILL unless it has exited, then waits for the exit and the end of the log. */
  close(): Promise<void>;
}

/**
 * Runs `ssdeno ARGS` with the V8 flags of `deno task serve` (they set how much garbage RSS carries
 * and how soon hot code is optimized), so the memory figures are the deployed ones.
 */
export function spawnServing(args: string[]): ServingProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", ...serveV8Flags(), "-A", "--quiet"],
      ...["--config", CONFIG, MAIN, ...args],
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      log = (log + text).slice(-64 * 1024);
    }
  })();
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // it has already exited
    }
  };
  const close = async () => {
    kill("SIGKILL");
    await child.status;
    await reading;
  };
  return {
    pid: child.pid,
    status: child.status,
    log: () => log,
    kill,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A TCP echo target in a process of its own (its descriptors do not count against ours). */
export interface EchoProcess extends AsyncDisposable {
  readonly pid: number;
  readonly port: number;
  close(): Promise<void>;
}

const ECHO_SCRIPT = new URL("./_echo_process.ts", import.meta.url).pathname;

/** Starts tests/soak/_echo_process.ts and reads the port it prints. */
export async function startEchoProcess(): Promise<EchoProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--quiet", ECHO_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const close = async () => {
    try {
      child.kill("SIGKILL");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // it has already exited
    }
    await child.status;
    await lines.cancel().catch(() => {});
    await child.stdin.close().catch(() => {});
  };
  const { value } = await lines.read();
  const port = Number(value?.trim());
  if (!(port > 0)) {
    await close();
    throw new Error(`The echo process printed "${value}" instead of its port`);
  }
  return { pid: child.pid, port, close, [Symbol.asyncDispose]: close };
}
