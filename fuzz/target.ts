/**
 * What a fuzz target is: one parser, the valid inputs its mutations start from, the call, and
 * the error classes the parser documents. Everything else a target's call throws is a finding.
 * @module
 */

/** A class of errors, matched with `instanceof`. */
// deno-lint-ignore no-explicit-any
export type ErrorClass = abstract new (...args: any[]) => Error;

/** One parser under fuzz. */
export interface FuzzTarget {
  /** Short kebab-case name, used on the command line: `--target socks5`. */
  readonly name: string;
  /** The functions the call exercises, for the report: `decodeAddress()`. */
  readonly parser: string;
  /** The errors the parser documents for bad input; anything else it throws is a bug. */
  readonly typed: readonly ErrorClass[];
  /** Valid inputs built with our own encoders; called once per run, never empty. */
  readonly seeds: () => Uint8Array[];
  /**
   * Tokens of the format for the mutator (delimiters, keys, magic numbers). A string is one
   * byte per character (`"\xff"` is the byte 0xFF); UTF-8 text goes in as bytes.
   */
  readonly dictionary?: readonly (string | Uint8Array)[];
  /** Longest input generated. Default 4096. */
  readonly maxLength?: number;
  /**
   * Runs the parser on one input and returns what it produced (its size is checked against the
   * input's). Throws the parser's errors, or `InvariantError` for a broken property the call
   * checks itself (no progress, a length past the input, an unbounded `wanted`).
   */
  readonly run: (input: Uint8Array) => unknown;
}

/** A property of the parser's answer that does not hold: always a finding, never typed. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

/** Throws `InvariantError(message)` unless `condition` holds. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

/** Whether `error` is one of the target's documented errors. */
export function isTyped(target: FuzzTarget, error: unknown): boolean {
  return !(error instanceof InvariantError) && target.typed.some((type) => error instanceof type);
}
