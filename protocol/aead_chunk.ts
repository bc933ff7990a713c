/**
 * AEAD-2017 TCP framing (SIP004). After the salt, each direction is a sequence of chunks:
 *
 * ```
 * +----------------------+-----------+----------------------+-----------+
 * | seal(u16 BE length)  | tag (16)  | seal(payload)        | tag (16)  |
 * | 2 bytes              |           | length bytes         |           |
 * +----------------------+-----------+----------------------+-----------+
 * ```
 *
 * The length is at most 0x3FFF (the two top bits are reserved and must be zero). Each seal or
 * open advances the nonce, so a chunk uses two nonces. Pure code: no sockets here.
 * @module
 */
import type { AeadCipher } from "../crypto/aead_cipher.ts";
import { ProtocolError } from "./errors.ts";

/** Largest payload of one AEAD-2017 chunk. */
export const MAX_AEAD_PAYLOAD = 0x3fff;
const LENGTH_SIZE = 2;
/**
 * The length block's plaintext, sealed from or opened into here: calls are synchronous, so one
 * buffer serves every chunk of every session rather than one per decoder (bench/throughput.ts,
 * idle memory).
 */
const LENGTH_BYTES = new Uint8Array(LENGTH_SIZE);

/** Bytes on the wire for `payloadLength` bytes of payload, split into maximal chunks. */
export function sealedLength(payloadLength: number, tagSize: number, maxPayload: number): number {
  const chunks = Math.ceil(payloadLength / maxPayload);
  return payloadLength + chunks * (LENGTH_SIZE + 2 * tagSize);
}

/**
 * Seals `payload` as one or more chunks into a single buffer; empty input gives no chunk.
 * `headroom` bytes are left free in front (a salt goes there), so a first flight is one buffer.
 */
export function sealChunks(
  cipher: AeadCipher,
  payload: Uint8Array,
  maxPayload: number = MAX_AEAD_PAYLOAD,
  headroom = 0,
): Uint8Array {
  const out = new Uint8Array(headroom + sealedLength(payload.length, cipher.tagSize, maxPayload));
  sealChunksInto(cipher, payload, maxPayload, out, headroom);
  return out;
}

/**
 * Seals `payload` as chunks into `out` from `at` (which must have `sealedLength` bytes of room
 * there); returns the offset after the last chunk.
 */
export function sealChunksInto(
  cipher: AeadCipher,
  payload: Uint8Array,
  maxPayload: number,
  out: Uint8Array,
  at: number,
): number {
  const lengthBytes = LENGTH_BYTES;
  for (let offset = 0; offset < payload.length; offset += maxPayload) {
    const piece = payload.subarray(offset, Math.min(offset + maxPayload, payload.length));
    lengthBytes[0] = piece.length >> 8;
    lengthBytes[1] = piece.length & 0xff;
    at += cipher.sealInto(lengthBytes, out.subarray(at));
    at += cipher.sealInto(piece, out.subarray(at));
  }
  return at;
}

/** What one decoding step produced. */
export interface ChunkStep {
  /** Bytes taken from the front of the input. */
  consumed: number;
  /** The payload of a complete chunk, or null when more input is needed. */
  payload: Uint8Array | null;
}

/**
 * Opens chunks from the front of a buffer. The length block is opened as soon as it is
 * complete (and remembered), so a bad first chunk fails after 18 bytes, not after a full chunk.
 * A chunk's payload is a new array: opening in place (a view of the input) saved one
 * allocation per chunk but raised a server's active memory by 4–8 KiB per connection
 * (bench/throughput.ts, active case; bench/results.md), for no measurable setup gain.
 */
export class ChunkDecoder {
  readonly #cipher: AeadCipher;
  readonly #maxPayload: number;
  #pendingLength = -1;

  constructor(cipher: AeadCipher, maxPayload: number = MAX_AEAD_PAYLOAD) {
    this.#cipher = cipher;
    this.#maxPayload = maxPayload;
  }

  /** True between chunks, where a stream may end cleanly. */
  get atChunkBoundary(): boolean {
    return this.#pendingLength < 0;
  }

  /** Bytes needed before the next step can make progress. */
  get wanted(): number {
    const tag = this.#cipher.tagSize;
    return this.#pendingLength < 0 ? LENGTH_SIZE + tag : this.#pendingLength + tag;
  }

  /** Decodes at most one chunk from the front of `input`. Throws `ProtocolError` on bad data. */
  next(input: Uint8Array): ChunkStep {
    const tag = this.#cipher.tagSize;
    let consumed = 0;
    if (this.#pendingLength < 0) {
      if (input.length < LENGTH_SIZE + tag) return { consumed: 0, payload: null };
      const lengthBytes = LENGTH_BYTES;
      this.#cipher.openInto(input.subarray(0, LENGTH_SIZE + tag), lengthBytes);
      const length = (lengthBytes[0]! << 8) | lengthBytes[1]!;
      if (length > this.#maxPayload) {
        throw new ProtocolError(
          "ERR_CIPHER",
          `Chunk length too large: expected at most ${this.#maxPayload}, got ${length}`,
        );
      }
      this.#pendingLength = length;
      consumed = LENGTH_SIZE + tag;
    }
    const end = consumed + this.#pendingLength + tag;
    if (input.length < end) return { consumed, payload: null };
    const payload = this.#cipher.open(input.subarray(consumed, end));
    this.#pendingLength = -1;
    return { consumed: end, payload };
  }
}
