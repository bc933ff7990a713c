/**
 * A child process started by a test kit (libev and rust peers, dnsmasq, redis-server): its
 * stdout and stderr collected (the last 64 KiB, for failure messages), and an end by its PID
 * that no state of the process can dodge.
 */

/** Output kept per process. */
const OUTPUT_LIMIT = 64 * 1024;
/** Time a process gets to exit after its signal before SIGKILL. */
const STOP_GRACE_MS = 5000;

export interface CollectedChild {
  readonly pid: number;
  readonly exited: Promise<Deno.CommandStatus>;
  /** Its stdout and stderr so far. */
  log(): string;
  /** Sends `name`; a process that has already exited is no error. */
  signal(name: Deno.Signal): void;
  /**
   * Sends `first` (SIGTERM by default) and SIGCONT (a stopped process handles nothing), SIGKILL
   * after 5 s, then waits for the exit and the end of its output. Idempotent: a later call gets
   * the first call's promise.
   */
  end(first?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Spawns `binary` with `args` (and `env` added), stdin closed, output collected. */
export function spawnCollected(
  binary: string,
  args: readonly string[],
  env: Record<string, string> = {},
): CollectedChild {
  const child = new Deno.Command(binary, {
    args: [...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      log += decoder.decode(bytes, { stream: true });
      if (log.length > OUTPUT_LIMIT) log = log.slice(-OUTPUT_LIMIT);
    }
  };
  const collecting = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const exited = child.status;
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch (error) {
      // Already exited: kill throws a TypeError ("Child process has already terminated").
      if (!(error instanceof TypeError)) throw error;
    }
  };
  let ending: Promise<Deno.CommandStatus> | undefined;
  const end = (first: Deno.Signal = "SIGTERM") =>
    ending ??= (async () => {
      signal(first);
      signal("SIGCONT");
      const killTimer = setTimeout(() => signal("SIGKILL"), STOP_GRACE_MS);
      const status = await exited;
      clearTimeout(killTimer);
      await collecting;
      return status;
    })();
  return { pid: child.pid, exited, log: () => log, signal, end };
}

/**
 * The `--v8-flags=…` argument of `deno task serve` in `denoJson` (this checkout's by default), so
 * a child started by a test or benchmark runs with the runtime settings users get. Throws when the
 * file cannot be read or parsed, or has no `serve` task.
 */
export function serveV8Flags(
  denoJson: string | URL = new URL("../deno.json", import.meta.url),
): string[] {
  const config: { tasks?: Record<string, string> } = JSON.parse(Deno.readTextFileSync(denoJson));
  const serve = config.tasks?.serve;
  if (serve === undefined) throw new Error(`No serve task in ${denoJson}`);
  return serve.split(/\s+/).filter((word) => word.startsWith("--v8-flags="));
}
