/**
 * The mutator: turns a corpus seed into a hostile variant, or generates an input from nothing.
 * No coverage feedback (Deno exposes none cheaply), so depth comes from stacking several
 * mutations per input, from mutations that know where lengths and numbers live, and from
 * structure-aware targets that seal a mutated plaintext (fuzz/targets.ts).
 *
 * | operator        | what it does                                                          |
 * | --------------- | --------------------------------------------------------------------- |
 * | flip            | one bit                                                               |
 * | set             | one byte to an interesting value (0, 1, 0x7f, 0x80, 0xff, CR, ':', …) |
 * | insert / delete | a random run, a repeated byte (up to 4 KiB), or a range removed       |
 * | duplicate       | a range copied to another place (repeated fields, headers, chunks)    |
 * | splice          | the head of this input joined to the tail of another seed             |
 * | boundary        | a u8/u16/u32/u64, big or little endian, set to an edge value          |
 * | length          | a byte or u16 nudged by ±1..4, or set to the bytes that follow        |
 * | token           | a dictionary token inserted or written over the input                 |
 * | number          | an ASCII digit run replaced by an edge number (0, 65536, 1e400, …)    |
 * | field           | a byte read as the length of what follows: that field becomes tokens  |
 * | between         | the bytes between two equal bytes (NULs, quotes, spaces) → a token    |
 * | truncate        | the input cut at a random point                                       |
 * @module
 */
import { concatBytes } from "../crypto/bytes.ts";
import type { Prng } from "./prng.ts";

/** What a target gives the mutator. */
export interface MutationSource {
  /** Valid inputs to start from; never empty. */
  readonly corpus: readonly Uint8Array[];
  /** Tokens of the format (delimiters, field names, magic numbers). */
  readonly dictionary: readonly Uint8Array[];
  /** Longest input to produce: longer results are cut here. */
  readonly maxLength: number;
}

const INTERESTING_BYTES = [
  0x00,
  0x01,
  0x02,
  0x03,
  0x04,
  0x05,
  0x0a,
  0x0d,
  0x20,
  0x22,
  0x25,
  0x2e,
  0x2f,
  0x30,
  0x3a,
  0x40,
  0x5b,
  0x5d,
  0x7f,
  0x80,
  0xc0,
  0xfe,
  0xff,
];

const EDGE_U16 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xfffe, 0xffff];
const EDGE_U32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const EDGE_NUMBERS = [
  "0",
  "-1",
  "1",
  "255",
  "256",
  "65535",
  "65536",
  "99999",
  "2147483648",
  "4294967296",
  "9007199254740993",
  "1e400",
  "-0",
  "0.5",
  "00",
  "0x10",
  "99999999999999999999999",
];
const EDGE_NUMBER_BYTES = EDGE_NUMBERS.map((text) => new TextEncoder().encode(text));

/** A fresh input: random bytes, a string of dictionary tokens, or printable noise. */
export function generate(rng: Prng, source: MutationSource): Uint8Array {
  const length = rng.oneIn(8) ? rng.below(source.maxLength + 1) : rng.below(64);
  switch (rng.below(3)) {
    case 0:
      return rng.bytes(length);
    case 1: {
      if (source.dictionary.length === 0) return rng.bytes(length);
      const parts: Uint8Array[] = [];
      let total = 0;
      while (total < length) {
        const part = rng.oneIn(3) ? rng.bytes(rng.between(1, 4)) : rng.pick(source.dictionary);
        parts.push(part);
        total += part.length;
      }
      return cut(concat(parts), source.maxLength);
    }
    default: {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = rng.between(0x20, 0x7e);
      return out;
    }
  }
}

/** A variant of `input` after 1 to 8 stacked mutations (mostly 1 or 2). */
export function mutate(rng: Prng, input: Uint8Array, source: MutationSource): Uint8Array {
  let out = input;
  const rounds = rng.oneIn(4) ? rng.between(2, 8) : rng.between(1, 2);
  for (let i = 0; i < rounds; i++) out = mutateOnce(rng, out, source);
  return cut(out, source.maxLength);
}

function mutateOnce(rng: Prng, input: Uint8Array, source: MutationSource): Uint8Array {
  const n = input.length;
  switch (rng.below(n === 0 ? 3 : 15)) {
    case 0:
      return insertAt(input, rng.below(n + 1), randomRun(rng));
    case 1:
      return insertAt(input, rng.below(n + 1), token(rng, source));
    case 2:
      return splice(rng, input, rng.pick(source.corpus));
    case 3: {
      const out = input.slice();
      const at = rng.below(n);
      out[at] = out[at]! ^ (1 << rng.below(8));
      return out;
    }
    case 4: {
      const out = input.slice();
      out[rng.below(n)] = rng.oneIn(3) ? rng.next() & 0xff : rng.pick(INTERESTING_BYTES);
      return out;
    }
    case 5: {
      const at = rng.below(n);
      const length = rng.between(1, Math.min(n - at, rng.oneIn(4) ? n : 16));
      return concat([input.subarray(0, at), input.subarray(at + length)]);
    }
    case 6: {
      const at = rng.below(n);
      const piece = input.subarray(at, at + rng.between(1, Math.min(n - at, 64)));
      return insertAt(input, rng.below(n + 1), piece);
    }
    case 7:
      return boundary(rng, input);
    case 8:
      return lengthTweak(rng, input);
    case 9: {
      const piece = token(rng, source).subarray(0, n);
      const out = input.slice();
      out.set(piece, rng.below(n - piece.length + 1));
      return out;
    }
    case 10:
      return numberSwap(rng, input);
    case 11:
      return input.subarray(0, rng.below(n));
    case 12:
      return replaceField(rng, input, source);
    case 13:
      return replaceBetween(rng, input, source);
    default:
      return splice(rng, input, rng.pick(source.corpus));
  }
}

function randomRun(rng: Prng): Uint8Array {
  if (rng.oneIn(4)) {
    return new Uint8Array(rng.oneIn(4) ? rng.between(256, 4096) : rng.between(2, 64)).fill(
      rng.pick(INTERESTING_BYTES),
    );
  }
  return rng.bytes(rng.between(1, 16));
}

function token(rng: Prng, source: MutationSource): Uint8Array {
  if (source.dictionary.length === 0 || rng.oneIn(4)) return rng.pick(EDGE_NUMBER_BYTES);
  return rng.pick(source.dictionary);
}

/** Head of one input, tail of the other, each cut at a random point. */
function splice(rng: Prng, input: Uint8Array, other: Uint8Array): Uint8Array {
  return concat([
    input.subarray(0, rng.below(input.length + 1)),
    other.subarray(rng.below(other.length + 1)),
  ]);
}

/** An edge value written over 1, 2, 4 or 8 bytes, either byte order. */
function boundary(rng: Prng, input: Uint8Array): Uint8Array {
  const width = rng.pick([1, 2, 2, 4, 8]);
  if (input.length < width) return input;
  const out = input.slice();
  const at = rng.below(input.length - width + 1);
  const view = new DataView(out.buffer);
  const little = rng.oneIn(3);
  if (width === 1) out[at] = rng.pick(INTERESTING_BYTES);
  else if (width === 2) view.setUint16(at, rng.pick(EDGE_U16), little);
  else if (width === 4) view.setUint32(at, rng.pick(EDGE_U32), little);
  else {
    view.setBigUint64(at, rng.pick([0n, 1n, 1n << 63n, (1n << 64n) - 1n, 1n << 53n]), little);
  }
  return out;
}

/** Treats a byte or a big-endian u16 as a length: off by a little, or the exact rest. */
function lengthTweak(rng: Prng, input: Uint8Array): Uint8Array {
  const out = input.slice();
  const wide = rng.oneIn(2) && out.length >= 2;
  const at = rng.below(out.length - (wide ? 1 : 0));
  const max = wide ? 0xffff : 0xff;
  const current = wide ? (out[at]! << 8) | out[at + 1]! : out[at]!;
  const rest = out.length - at - (wide ? 2 : 1);
  const value = rng.oneIn(3)
    ? rest + rng.between(-2, 2)
    : current + (rng.oneIn(2) ? 1 : -1) * rng.between(1, 4);
  const clamped = Math.min(max, Math.max(0, value));
  if (wide) {
    out[at] = clamped >> 8;
    out[at + 1] = clamped & 0xff;
  } else out[at] = clamped;
  return out;
}

/** Replaces the ASCII digit run nearest a random point with an edge number. */
function numberSwap(rng: Prng, input: Uint8Array): Uint8Array {
  const isDigit = (byte: number | undefined) => byte !== undefined && byte >= 0x30 && byte <= 0x39;
  let at = rng.below(input.length);
  while (at < input.length && !isDigit(input[at])) at++;
  if (at === input.length) {
    return insertAt(input, rng.below(input.length + 1), rng.pick(EDGE_NUMBER_BYTES));
  }
  let end = at;
  while (isDigit(input[end])) end++;
  while (at > 0 && isDigit(input[at - 1])) at--;
  return concat([input.subarray(0, at), rng.pick(EDGE_NUMBER_BYTES), input.subarray(end)]);
}

/** Reads a byte as a u8 length prefix and replaces its field with one or two tokens. */
function replaceField(rng: Prng, input: Uint8Array, source: MutationSource): Uint8Array {
  const at = rng.below(input.length);
  const old = Math.min(input[at]!, input.length - at - 1);
  let value = token(rng, source);
  if (rng.oneIn(4)) value = concat([value, token(rng, source)]);
  value = value.subarray(0, 255);
  return concat([
    input.subarray(0, at),
    Uint8Array.of(value.length),
    value,
    input.subarray(at + 1 + old),
  ]);
}

/** Replaces what lies between a byte and the next equal byte with a token, or nothing. */
function replaceBetween(rng: Prng, input: Uint8Array, source: MutationSource): Uint8Array {
  const at = rng.below(input.length);
  const end = input.indexOf(input[at]!, at + 1);
  if (end < 0) return input;
  const value = rng.oneIn(4) ? new Uint8Array(0) : token(rng, source);
  return concat([input.subarray(0, at + 1), value, input.subarray(end)]);
}

function insertAt(input: Uint8Array, at: number, piece: Uint8Array): Uint8Array {
  return concat([input.subarray(0, at), piece, input.subarray(at)]);
}

function cut(input: Uint8Array, maxLength: number): Uint8Array {
  return input.length > maxLength ? input.subarray(0, maxLength) : input;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(...parts);
}
