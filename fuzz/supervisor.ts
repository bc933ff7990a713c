/**
 * Runs fuzz jobs in a worker and watches it: a parser stuck in a loop blocks its isolate, so
 * the "no hang" property can only be checked from outside. The worker beats a shared counter
 * before every parser call; when the counter stands still for `hangMs`, the worker is
 * terminated and the report names the iteration it was on, whose input is made again here
 * (inputs are a pure function of seed, target and iteration). A crashed worker is reported the
 * same way. The next job gets a fresh worker.
 * @module
 */
import { corpusOf, inputFor } from "./corpus.ts";
import type { FuzzOptions, TargetReport } from "./engine.ts";
import { toHex } from "./hex.ts";
import type { FuzzTarget } from "./target.ts";
import type { WorkerJob } from "./_worker.ts";

/** Options of {@linkcode FuzzSupervisor.run}. */
export interface SupervisedOptions extends Omit<FuzzOptions, "heartbeat"> {
  /** Module whose `TARGETS` lists the target. Default: fuzz/targets.ts. */
  readonly module?: URL | string;
  /** Called four times a second with the inputs done so far. */
  readonly onProgress?: (done: number) => void;
}

/** A worker with a watchdog; dispose it to end the worker. */
export class FuzzSupervisor {
  readonly #hangMs: number;
  #worker: Worker | undefined;

  /** `hangMs`: how long the worker may go without calling the parser. Default 30 000. */
  constructor(options: { hangMs?: number } = {}) {
    this.#hangMs = options.hangMs ?? 30_000;
  }

  /** Runs one target's job; resolves with its report, a hang or a crash included. */
  run(name: string, options: SupervisedOptions): Promise<TargetReport> {
    const { module: moduleOption, onProgress, ...engine } = options;
    const module = String(moduleOption ?? new URL("./targets.ts", import.meta.url));
    const shared = new SharedArrayBuffer(8);
    const slots = new Int32Array(shared);
    const worker = this.#worker ??= new Worker(new URL("./_worker.ts", import.meta.url), {
      type: "module",
    });
    return new Promise((resolve, reject) => {
      let calls = -1;
      let lastChange = performance.now();
      const finish = () => {
        clearInterval(timer);
        worker.onmessage = null;
        worker.onerror = null;
      };
      const lose = (kind: "hang" | "crash", error: string) => {
        finish();
        this.#terminate();
        const done = Atomics.load(slots, 0) === 0 ? 0 : Atomics.load(slots, 1);
        lostReport(module, name, engine, done, kind, error).then(resolve, reject);
      };
      const timer = setInterval(() => {
        const now = Atomics.load(slots, 0);
        onProgress?.(Atomics.load(slots, 1));
        if (now !== calls) {
          calls = now;
          lastChange = performance.now();
        } else if (performance.now() - lastChange > this.#hangMs) {
          const seconds = (this.#hangMs / 1000).toFixed(0);
          lose(
            "hang",
            calls <= 0
              ? `No parser call within ${seconds} s of the start (stuck building the target)`
              : `No return from the parser within ${seconds} s`,
          );
        }
      }, 250);
      worker.onmessage = (event: MessageEvent<{ report?: TargetReport; error?: string }>) => {
        finish();
        if (event.data.report) resolve(event.data.report);
        else reject(new Error(event.data.error ?? "The fuzz worker answered nothing"));
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        lose("crash", `The fuzz worker died: ${event.message}`);
      };
      const job: WorkerJob = { name, module, options: engine, shared };
      worker.postMessage(job);
    });
  }

  [Symbol.dispose](): void {
    this.#terminate();
  }

  #terminate(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
  }
}

/** The report of a job the worker did not finish: the input it was on, made again here. */
async function lostReport(
  module: string,
  name: string,
  options: Omit<FuzzOptions, "heartbeat">,
  done: number,
  kind: "hang" | "crash",
  error: string,
): Promise<TargetReport> {
  const { TARGETS } = await import(module) as { TARGETS: readonly FuzzTarget[] };
  const target = TARGETS.find((item) => item.name === name);
  if (target === undefined) throw new Error(`Unknown fuzz target "${name}"`);
  const seed = options.seed ?? 1;
  const from = options.from ?? 0;
  const iteration = from + done;
  const input = toHex(inputFor(target, corpusOf(target), seed, iteration));
  return {
    name,
    parser: target.parser,
    seed,
    from,
    inputs: done,
    accepted: 0,
    typed: 0,
    seedsRefused: [],
    maxMs: 0,
    slowestIteration: iteration,
    totalMs: 0,
    maxOutputBytes: 0,
    peakMemoryMiB: 0,
    peakRssMiB: 0,
    failures: [{ kind, iteration, input, error, count: 1 }],
    failureCount: 1,
  };
}
