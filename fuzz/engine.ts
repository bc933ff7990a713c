/**
 * Runs one target over generated and mutated inputs and reports what it saw. Per input:
 *
 * - the call returns or throws one of the target's typed errors; anything else is `untyped`,
 *   and a broken property the target checks itself is `invariant`;
 * - it takes at most `timeLimitMs` (a slow input is run twice more and fails only when the
 *   fastest of the three is still slow, so a GC pause or a busy machine is no finding): `slow`;
 * - its answer holds at most `outputBudget(input.length)` bytes (fuzz/measure.ts): `allocation`;
 * - memory stays bounded across inputs (fuzz/_memory.ts): `memory`.
 *
 * A hang cannot be caught from inside the isolate it blocks: fuzz/supervisor.ts runs this in a
 * worker and watches `heartbeat`. Inputs come from fuzz/corpus.ts, so a failure reproduces
 * from (seed, target, iteration) or from its hex.
 * @module
 */
import { corpusOf, inputFor } from "./corpus.ts";
import { toHex } from "./hex.ts";
import { outputBudget, retainedSize } from "./measure.ts";
import { MemoryWatch } from "./_memory.ts";
import { describe, minimize, type Outcome, runOnce, signatureOf } from "./outcome.ts";
import type { FuzzTarget } from "./target.ts";

/** Options of {@linkcode fuzzTarget}. */
export interface FuzzOptions {
  /** Inputs to run. */
  readonly iterations: number;
  /** Default 1. */
  readonly seed?: number;
  /** First iteration number. Default 0 (the seeds and regressions run first, as they are). */
  readonly from?: number;
  /** Per-input time bound in milliseconds. Default 250. */
  readonly timeLimitMs?: number;
  /** Distinct failures kept with their inputs. Default 5. */
  readonly maxFailures?: number;
  /** Called before every call of the parser with the iteration (a watchdog's pulse). */
  readonly heartbeat?: (iteration: number) => void;
}

export type FailureKind =
  | "untyped"
  | "invariant"
  | "slow"
  | "allocation"
  | "memory"
  | "hang"
  | "crash";

/** One distinct finding and the first input that showed it. */
export interface Failure {
  readonly kind: FailureKind;
  readonly iteration: number;
  /** The input as generated, hex (empty for findings about the whole run). */
  readonly input: string;
  /** A smaller input with the same signature, hex (untyped and invariant only). */
  readonly minimal?: string;
  /** `Name: message`, or what was measured. */
  readonly error: string;
  readonly stack?: string;
  /** Inputs that showed this finding. */
  readonly count: number;
}

/** What one target did. */
export interface TargetReport {
  readonly name: string;
  readonly parser: string;
  readonly seed: number;
  readonly from: number;
  readonly inputs: number;
  /** Inputs the parser accepted (or asked more bytes for). */
  readonly accepted: number;
  /** Inputs refused with a typed error. */
  readonly typed: number;
  /** Seeds the parser refused: a seed is a valid input, so this is a broken corpus. */
  readonly seedsRefused: readonly string[];
  readonly maxMs: number;
  readonly slowestIteration: number;
  readonly totalMs: number;
  /** Largest answer, in `retainedSize` bytes. */
  readonly maxOutputBytes: number;
  readonly peakMemoryMiB: number;
  readonly peakRssMiB: number;
  readonly retainedMiB?: number;
  readonly rssGrowthMiB?: number;
  readonly failures: readonly Failure[];
  /** All failing inputs, distinct or not. */
  readonly failureCount: number;
}

/** Runs `options.iterations` inputs through `target`. */
export async function fuzzTarget(target: FuzzTarget, options: FuzzOptions): Promise<TargetReport> {
  const seed = options.seed ?? 1;
  const from = options.from ?? 0;
  const timeLimitMs = options.timeLimitMs ?? 250;
  const maxFailures = options.maxFailures ?? 5;
  const pulse = options.heartbeat ?? (() => {});
  const source = corpusOf(target);
  const known = source.corpus.length + source.regressions.length;
  const memory = new MemoryWatch();
  await memory.start();

  const failures = new Map<string, Failure>();
  let failureCount = 0;
  /** Counts a failing input; `make` describes it only when its signature is new. */
  const record = (signature: string, make: () => Omit<Failure, "count">) => {
    failureCount++;
    const seen = failures.get(signature);
    if (seen) failures.set(signature, { ...seen, count: seen.count + 1 });
    else if (failures.size < maxFailures) failures.set(signature, { ...make(), count: 1 });
  };

  let accepted = 0;
  let typed = 0;
  let maxMs = 0;
  let slowestIteration = from;
  let maxOutputBytes = 0;
  const seedsRefused: string[] = [];
  const started = performance.now();
  let done = 0;
  for (; done < options.iterations; done++) {
    const iteration = from + done;
    const input = inputFor(target, source, seed, iteration);
    pulse(iteration);
    const t0 = performance.now();
    const outcome = runOnce(target, input);
    let ms = performance.now() - t0;
    if (ms > timeLimitMs) ms = fastestOf(target, input, ms, () => pulse(iteration));
    if (ms > maxMs) {
      maxMs = ms;
      slowestIteration = iteration;
    }
    if (ms > timeLimitMs) {
      record("slow", () => ({
        kind: "slow",
        iteration,
        input: toHex(input),
        error: `${ms.toFixed(1)} ms for a ${input.length}-byte input (limit ${timeLimitMs} ms)`,
      }));
    }
    if (outcome.kind === "accepted") {
      accepted++;
      const size = retainedSize(outcome.value);
      if (size > maxOutputBytes) maxOutputBytes = size;
      if (size > outputBudget(input.length)) {
        record("allocation", () => ({
          kind: "allocation",
          iteration,
          input: toHex(input),
          error: `The answer holds ${size} bytes for a ${input.length}-byte input (budget ${
            outputBudget(input.length)
          })`,
        }));
      }
    } else if (outcome.kind === "typed") {
      typed++;
      if (iteration < source.corpus.length) seedsRefused.push(describe(outcome.error));
    } else {
      const signature = signatureOf(outcome);
      record(signature, () => {
        const failure = failureOf(outcome, iteration, input);
        // Seeds and regressions are known inputs: no need to shrink them.
        if (iteration < known) return failure;
        const minimal = minimize(target, input, signature, () => pulse(iteration));
        return { ...failure, minimal: toHex(minimal) };
      });
    }
    if ((done & 1023) === 1023) {
      const finding = await memory.sample();
      if (finding) {
        record(
          "memory",
          () => ({ kind: "memory", iteration, input: toHex(input), error: finding }),
        );
      }
    }
    if ([1, 2, 3].some((q) => done + 1 === Math.floor((options.iterations * q) / 4))) {
      await memory.checkpoint();
    }
  }
  const totalMs = performance.now() - started;
  const { stats, findings } = await memory.finish();
  for (const [i, error] of findings.entries()) {
    record(`end ${i}`, () => ({ kind: "memory", iteration: from + done - 1, input: "", error }));
  }
  return {
    name: target.name,
    parser: target.parser,
    seed,
    from,
    inputs: done,
    accepted,
    typed,
    seedsRefused,
    maxMs,
    slowestIteration,
    totalMs,
    maxOutputBytes,
    ...stats,
    failures: [...failures.values()],
    failureCount,
  };
}

/** The fastest of the first time and two more runs. */
function fastestOf(
  target: FuzzTarget,
  input: Uint8Array,
  first: number,
  pulse: () => void,
): number {
  let best = first;
  for (let i = 0; i < 2; i++) {
    pulse();
    const t0 = performance.now();
    runOnce(target, input);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function failureOf(
  outcome: Outcome,
  iteration: number,
  input: Uint8Array,
): Omit<Failure, "count"> {
  const error = "error" in outcome ? outcome.error : undefined;
  const stack = error instanceof Error
    ? error.stack?.split("\n").slice(0, 12).join("\n")
    : undefined;
  return {
    kind: outcome.kind === "invariant" ? "invariant" : "untyped",
    iteration,
    input: toHex(input),
    error: describe(error),
    ...(stack === undefined ? {} : { stack }),
  };
}
