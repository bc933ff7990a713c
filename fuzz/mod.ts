/**
 * A small fuzzer for ssdeno's parsers: a seeded PRNG and mutator of our own, one target per
 * parser with valid seeds made by our encoders, and a runner that checks three properties per
 * input: only the parser's typed errors, no hang (a watched worker), bounded allocation.
 *
 * ```ts
 * import { FuzzSupervisor } from "./mod.ts";
 *
 * using supervisor = new FuzzSupervisor();
 * const report = await supervisor.run("socks5", { iterations: 10_000, seed: 1 });
 * console.log(report.accepted, report.typed, report.failures);
 * ```
 *
 * The command line is fuzz/run.ts (`deno task fuzz`).
 * @module
 */
export { corpusOf, inputFor } from "./corpus.ts";
export type { Corpus } from "./corpus.ts";
export { fuzzTarget } from "./engine.ts";
export type { Failure, FailureKind, FuzzOptions, TargetReport } from "./engine.ts";
export { fromHex, toHex } from "./hex.ts";
export { describe, minimize, runOnce, signatureOf } from "./outcome.ts";
export type { Outcome } from "./outcome.ts";
export { outputBudget, retainedSize } from "./measure.ts";
export { generate, mutate } from "./mutate.ts";
export type { MutationSource } from "./mutate.ts";
export { hashBytes, inputSeed, Prng } from "./prng.ts";
export { FuzzSupervisor } from "./supervisor.ts";
export type { SupervisedOptions } from "./supervisor.ts";
export { invariant, InvariantError, isTyped } from "./target.ts";
export type { ErrorClass, FuzzTarget } from "./target.ts";
export { findTarget, TARGETS } from "./targets.ts";
