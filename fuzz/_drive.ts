/**
 * Drivers for the stateful parsers: a server {@linkcode StreamFraming} and the HTTP
 * {@linkcode ChunkedScanner} get one input in pieces, as sockets deliver it. The split points
 * come from a generator seeded with the input's hash, so the hex of an input alone reproduces
 * a finding. Each step is checked for progress and for bounded demands:
 *
 * - `open()` consumes `0 ≤ consumed ≤ buffered` bytes;
 * - it never returns nothing while holding `wanted` bytes (the relay would wait forever);
 * - it never hands out an empty payload without consuming (the relay would spin);
 * - `1 ≤ wanted ≤ MAX_WANTED`: the relay sizes its read buffer as `2 × wanted + 64`, so a
 *   larger `wanted` would be memory a peer allocates with a few bytes;
 * - the payload bytes handed out never exceed the input bytes.
 * @module
 */
import type { ChunkedScanner } from "../protocol/http_proxy.ts";
import type { StreamFraming, StreamRequest } from "../protocol/stream_framing.ts";
import { hashBytes, Prng } from "./prng.ts";
import { invariant } from "./target.ts";

/** The largest unit either edition frames: a 2022 chunk of 0xFFFF bytes plus its tag. */
export const MAX_WANTED = 0xffff + 16;

/** What a framing gave for one input. */
export interface FramingOutcome {
  readonly payloadBytes: number;
  readonly steps: number;
  readonly request?: StreamRequest;
  readonly atChunkBoundary: boolean;
}

/**
 * Feeds `input` to `framing.open` in pieces; throws what `open` throws. The framing sees the
 * unconsumed bytes received so far as a view into `input` (no copying: a 16 KiB chunk fed byte
 * by byte stays linear), with a non-zero `byteOffset` as a socket buffer would give.
 */
export function driveFraming(framing: StreamFraming, input: Uint8Array): FramingOutcome {
  const rng = new Prng(hashBytes(input));
  const mode = rng.below(4);
  let start = 0;
  let received = 0;
  let payloadBytes = 0;
  let steps = 0;
  let request: StreamRequest | undefined;
  checkWanted(framing.wanted);
  while (received < input.length) {
    received += pieceSize(rng, mode, framing.wanted - (received - start), input.length);
    received = Math.min(received, input.length);
    // Every step either consumes or ends the loop, so this many calls always suffice.
    const callLimit = received - start + 2;
    for (let calls = 0;; calls++) {
      invariant(calls <= callLimit, "open() keeps returning without using its input");
      const buffered = received - start;
      const step = framing.open(input.subarray(start, received));
      steps++;
      invariant(
        Number.isInteger(step.consumed) && step.consumed >= 0 && step.consumed <= buffered,
        `open() consumed ${step.consumed} of ${buffered} bytes`,
      );
      start += step.consumed;
      const wanted = framing.wanted;
      checkWanted(wanted);
      if (step.request !== undefined) request = step.request;
      if (step.payload === null) {
        invariant(
          step.consumed > 0 || buffered < wanted,
          `open() consumed nothing and gave nothing with ${buffered} bytes buffered, ` +
            `wanted ${wanted}`,
        );
        if (step.consumed === 0) break;
        continue;
      }
      invariant(
        step.consumed > 0 || step.payload.length > 0,
        "open() gave an empty payload without consuming",
      );
      payloadBytes += step.payload.length;
      invariant(
        payloadBytes <= input.length,
        `open() gave ${payloadBytes} payload bytes from a ${input.length}-byte input`,
      );
      if (start === received) break;
    }
  }
  const outcome = { payloadBytes, steps, atChunkBoundary: framing.atChunkBoundary };
  return request === undefined ? outcome : { ...outcome, request };
}

/** What a chunked scanner made of one input. */
export interface ChunkedOutcome {
  /** Body bytes, once the body ended; -1 while it has not. */
  readonly bodyLength: number;
  readonly done: boolean;
}

/** Feeds `input` to `scanner.feed` in pieces; checks each answer stays inside its piece. */
export function driveChunked(scanner: ChunkedScanner, input: Uint8Array): ChunkedOutcome {
  const rng = new Prng(hashBytes(input));
  const mode = rng.below(4);
  let offset = 0;
  let bodyLength = -1;
  while (offset < input.length) {
    const size = pieceSize(rng, mode, 16, input.length);
    const piece = input.subarray(offset, offset + size);
    const answer = scanner.feed(piece);
    if (bodyLength >= 0) {
      invariant(answer === 0, `feed() after the end returned ${answer}, expected 0`);
    } else if (answer >= 0) {
      invariant(
        Number.isInteger(answer) && answer >= 1 && answer <= piece.length && scanner.done,
        `feed() returned ${answer} for a ${piece.length}-byte piece (done: ${scanner.done})`,
      );
      bodyLength = offset + answer;
    } else {
      invariant(answer === -1 && !scanner.done, `feed() returned ${answer} before the end`);
    }
    offset += size;
  }
  return { bodyLength, done: scanner.done };
}

/**
 * Whole input, byte by byte, random pieces, or exactly what completes `wanted` like the relay;
 * `missing` is `wanted` minus the bytes already buffered.
 */
function pieceSize(rng: Prng, mode: number, missing: number, total: number): number {
  switch (mode) {
    case 0:
      return total;
    case 1:
      return total > 2048 ? rng.between(1, 64) : 1;
    case 2:
      return rng.between(1, Math.max(1, 2 * missing));
    default:
      return Math.max(1, missing);
  }
}

function checkWanted(wanted: number): void {
  invariant(
    Number.isInteger(wanted) && wanted >= 1 && wanted <= MAX_WANTED,
    `wanted is ${wanted}: expected 1 to ${MAX_WANTED}`,
  );
}
