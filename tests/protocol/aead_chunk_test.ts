import { AeadCipher } from "../../crypto/aead_cipher.ts";
import {
  ChunkDecoder,
  MAX_AEAD_PAYLOAD,
  sealChunks,
  sealedLength,
} from "../../protocol/aead_chunk.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";

const KEY = new Uint8Array(32).fill(9);
const cipher = () => new AeadCipher("chacha20-poly1305", KEY);

/** Feeds `wire` to a decoder in pieces cut at `cuts`, collecting payloads. */
function decodeInPieces(wire: Uint8Array, cuts: number[]): Uint8Array {
  const decoder = new ChunkDecoder(cipher(), MAX_AEAD_PAYLOAD);
  let buffer = new Uint8Array(0);
  const out: number[] = [];
  let previous = 0;
  for (const cut of [...cuts, wire.length]) {
    const merged = new Uint8Array(buffer.length + cut - previous);
    merged.set(buffer);
    merged.set(wire.subarray(previous, cut), buffer.length);
    buffer = merged;
    previous = cut;
    for (;;) {
      const step = decoder.next(buffer);
      buffer = buffer.slice(step.consumed);
      if (step.payload) out.push(...step.payload);
      else break;
    }
  }
  assertEquals(buffer.length, 0);
  assertOk(decoder.atChunkBoundary);
  return Uint8Array.from(out);
}

Deno.test("sealChunks() output decodes identically when split at every offset", () => {
  const payload = Uint8Array.from({ length: 100 }, (_, i) => i);
  // One cipher seals both chunks, so the second uses nonces 2 and 3.
  const sealer = cipher();
  const twoChunks = new Uint8Array([
    ...sealChunks(sealer, payload),
    ...sealChunks(sealer, payload),
  ]);
  for (let cut = 0; cut <= twoChunks.length; cut++) {
    assertEquals(decodeInPieces(twoChunks, [cut]), new Uint8Array([...payload, ...payload]));
  }
});

Deno.test("sealChunks() splits payloads larger than 0x3FFF into maximal chunks", () => {
  const payload = crypto.getRandomValues(new Uint8Array(MAX_AEAD_PAYLOAD * 2 + 5));
  const wire = sealChunks(cipher(), payload);
  assertEquals(wire.length, sealedLength(payload.length, 16, MAX_AEAD_PAYLOAD));
  assertEquals(wire.length, payload.length + 3 * 34);
  assertEquals(decodeInPieces(wire, [1, 18, 19, 5000, 16401, 16436]), payload);
  assertEquals(sealChunks(cipher(), new Uint8Array(0)).length, 0);
});

Deno.test("ChunkDecoder refuses a length over 0x3FFF and a tampered payload", () => {
  const big = new AeadCipher("chacha20-poly1305", KEY).seal(Uint8Array.of(0x40, 0x00));
  const tooLong = assertThrows(() => new ChunkDecoder(cipher()).next(big));
  assertOk(tooLong instanceof ProtocolError && tooLong.code === "ERR_CIPHER");
  const wire = sealChunks(cipher(), Uint8Array.of(1, 2, 3));
  wire[wire.length - 1]! ^= 0x80;
  const decoder = new ChunkDecoder(cipher());
  const error = assertThrows(() => decoder.next(wire));
  assertOk(error instanceof ProtocolError && error.code === "ERR_CIPHER");
});

Deno.test("ChunkDecoder opens the length block before the payload arrives", () => {
  const wire = sealChunks(cipher(), new Uint8Array(1000));
  const decoder = new ChunkDecoder(cipher());
  assertEquals(decoder.next(wire.subarray(0, 17)), { consumed: 0, payload: null });
  assertEquals(decoder.next(wire.subarray(0, 18)), { consumed: 18, payload: null });
  assertEquals(decoder.wanted, 1016);
  assertEquals(decoder.atChunkBoundary, false);
  assertEquals(decoder.next(wire.subarray(18))?.payload?.length, 1000);
});
