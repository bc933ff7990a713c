/**
 * `main.ts` as operators run it: a subprocess whose stderr (the log) is collected, for tests of
 * signals, reloads, descriptor limits and the control ports. Ended by its PID in `close`.
 */
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

export interface SsdenoProcess extends AsyncDisposable {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  /** Everything it has logged so far. */
  log(): string;
  kill(signal: Deno.Signal): void;
  /** SIGKILL unless it has exited, then waits for the exit and the end of the log. */
  close(): Promise<void>;
}

/** Runs `ssdeno ARGS` (under `ulimit -n fileLimit` when given). */
export function spawnSsdeno(args: string[], options: { fileLimit?: number } = {}): SsdenoProcess {
  const deno = [Deno.execPath(), "run", "-A", "--quiet", "--config", CONFIG, MAIN, ...args];
  const io = { stdin: "null", stdout: "null", stderr: "piped" } as const;
  const child = options.fileLimit === undefined
    ? new Deno.Command(deno[0]!, { args: deno.slice(1), ...io }).spawn()
    : new Deno.Command("bash", {
      args: ["-c", 'ulimit -n "$0" && exec "$@"', `${options.fileLimit}`, ...deno],
      ...io,
    }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) log += text;
  })();
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // it has already exited
    }
  };
  const close = async () => {
    kill("SIGCONT");
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
