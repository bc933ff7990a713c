/**
 * Where a target's inputs come from: its seeds, the regressions recorded for it, and the
 * mutator. Input number `i` is a pure function of (seed, target, i), so a finding reproduces
 * from those three numbers and a watchdog can make again the input a hung worker was on.
 * @module
 */
import { latin1 } from "./_fixtures.ts";
import { fromHex } from "./hex.ts";
import { generate, mutate, type MutationSource } from "./mutate.ts";
import { inputSeed, Prng } from "./prng.ts";
import { REGRESSIONS } from "./regressions.ts";
import type { FuzzTarget } from "./target.ts";

/** What a target's inputs are made from. */
export interface Corpus extends MutationSource {
  /** Inputs that once failed (fuzz/regressions.ts), replayed after the seeds. */
  readonly regressions: readonly Uint8Array[];
}

/** The corpus of a target: its seeds, cut to its length limit, and its regressions. */
export function corpusOf(target: FuzzTarget): Corpus {
  const maxLength = target.maxLength ?? 4096;
  const corpus = target.seeds().map((seed) => seed.subarray(0, maxLength));
  if (corpus.length === 0) throw new Error(`Target "${target.name}" has no seeds`);
  const dictionary = (target.dictionary ?? []).map((token) =>
    typeof token === "string" ? latin1(token) : token
  );
  const regressions = (REGRESSIONS[target.name] ?? []).map(fromHex);
  return { corpus, dictionary, maxLength, regressions };
}

/**
 * Input number `iteration`: the seeds as-is, then the regressions, then 1 in 10 generated and
 * 9 in 10 mutated from a seed.
 */
export function inputFor(
  target: FuzzTarget,
  source: Corpus,
  seed: number,
  iteration: number,
): Uint8Array {
  if (iteration < source.corpus.length) return source.corpus[iteration]!;
  const regression = source.regressions[iteration - source.corpus.length];
  if (regression !== undefined) return regression;
  const rng = new Prng(inputSeed(seed, target.name, iteration));
  return rng.oneIn(10) ? generate(rng, source) : mutate(rng, rng.pick(source.corpus), source);
}
