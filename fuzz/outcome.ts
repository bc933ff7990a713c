/**
 * One call of a parser and how it ended: accepted, one of its typed errors, an invariant the
 * target checks that broke, or anything else thrown (`untyped`: a bug). Also the signature
 * that tells one bug from another, and the minimizer that shrinks an input while its signature
 * stays.
 * @module
 */
import { type FuzzTarget, InvariantError, isTyped } from "./target.ts";

/** How one call ended. */
export type Outcome =
  | { readonly kind: "accepted"; readonly value: unknown }
  | { readonly kind: "typed" | "untyped" | "invariant"; readonly error: unknown };

/** Runs the parser once on a copy (a parser writing into its input must not alter the corpus). */
export function runOnce(target: FuzzTarget, input: Uint8Array): Outcome {
  try {
    return { kind: "accepted", value: target.run(input.slice()) };
  } catch (error) {
    if (isTyped(target, error)) return { kind: "typed", error };
    return { kind: error instanceof InvariantError ? "invariant" : "untyped", error };
  }
}

/** Kind, error class and the frame that threw: one bug, one signature. */
export function signatureOf(outcome: Outcome): string {
  if (outcome.kind === "accepted") return "accepted";
  const error = outcome.error;
  const name = error instanceof Error ? error.name : typeof error;
  // Where it was thrown; the frames below vary with how the harness got there.
  const frame = error instanceof Error
    ? (error.stack ?? "").split("\n").find((line) => /^\s+at /.test(line))
    : undefined;
  // An invariant's message is part of it; its numbers change as the input shrinks.
  const message = outcome.kind === "invariant" ? describe(error).replace(/\d+/g, "#") : "";
  return `${outcome.kind}|${name}|${frame?.trim() ?? ""}|${message}`;
}

/**
 * Deletes ever smaller ranges while the same signature remains: a short reproducer for the
 * report. Bounded to 4000 tries and 10 s; `pulse` runs before each try (the watchdog).
 */
export function minimize(
  target: FuzzTarget,
  input: Uint8Array,
  signature: string,
  pulse: () => void,
): Uint8Array {
  let best = input;
  let tries = 0;
  const deadline = performance.now() + 10_000;
  for (let size = best.length >> 1; size >= 1; size >>= 1) {
    for (let at = 0; at + size <= best.length;) {
      if (++tries > 4000 || performance.now() > deadline) return best;
      const candidate = new Uint8Array(best.length - size);
      candidate.set(best.subarray(0, at));
      candidate.set(best.subarray(at + size), at);
      pulse();
      if (signatureOf(runOnce(target, candidate)) === signature) best = candidate;
      else at += size;
    }
  }
  return best;
}

/** `Name: message` of anything thrown, cut to 300 characters. */
export function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
