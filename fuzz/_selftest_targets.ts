/**
 * Two broken parsers for testing the harness itself (tests/fuzz_test.ts): one throws a
 * `TypeError` and one never returns when the input holds the byte 0x42. Not in `TARGETS`.
 * @module
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { FuzzTarget } from "./target.ts";

/** The byte that breaks both. */
export const TRIGGER = 0x42;

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: "selftest-untyped",
    parser: "a parser with a TypeError on 0x42",
    typed: [ProtocolError],
    seeds: () => [Uint8Array.of(1, 2, 3)],
    run(input) {
      if (input.includes(TRIGGER)) throw new TypeError("Cannot read properties of undefined");
      if (input.length % 2 === 0) throw new ProtocolError("ERR_READ_ADDRESS", "Even length");
      return input.length;
    },
  },
  {
    name: "selftest-hang",
    parser: "a parser that loops forever on 0x42",
    typed: [],
    seeds: () => [Uint8Array.of(1, 2, 3)],
    run(input) {
      // deno-lint-ignore no-empty
      while (input.includes(TRIGGER)) {}
      return input.length;
    },
  },
];
