/** Helpers for the framing tests: open a whole stream as the relay would, read an error's code. */
import { assertOk, assertThrows } from "../_assert.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import type { FramingStep, StreamFraming } from "../../protocol/stream_framing.ts";

/** Opens `input` given in pieces cut at `cuts`, as the relay would: returns every step. */
export function openAll(framing: StreamFraming, input: Uint8Array, cuts: readonly number[] = []) {
  const steps: FramingStep[] = [];
  let buffered = new Uint8Array(0);
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    const joined = new Uint8Array(buffered.length + cut - from);
    joined.set(buffered);
    joined.set(input.subarray(from, cut), buffered.length);
    from = cut;
    buffered = joined;
    for (;;) {
      const step = framing.open(buffered);
      buffered = buffered.slice(step.consumed);
      if (step.payload !== null || step.request !== undefined) steps.push(step);
      if (step.consumed === 0) break;
    }
  }
  return { steps, leftover: buffered.length };
}

export function payloadOf(steps: readonly FramingStep[]): Uint8Array {
  return Uint8Array.from(steps.flatMap((step) => [...(step.payload ?? [])]));
}

export function codeOf(fn: () => unknown): string {
  const error = assertThrows(fn);
  assertOk(error instanceof ProtocolError, String(error));
  return error.code;
}
