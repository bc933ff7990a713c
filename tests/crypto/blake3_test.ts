import assert from "node:assert/strict";
import { blake3DeriveKey, blake3Hash } from "../../crypto/blake3.ts";
import { loadVectors, toHex } from "./_vectors2022.ts";

const official = await loadVectors("blake3_official_subset.json");

function officialInput(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 251);
}

Deno.test("blake3Hash() matches the official vectors, default and extended output", async (t) => {
  assert.equal(official.cases.length, 5);
  for (const v of official.cases) {
    await t.step(`input length ${v.input_len}`, () => {
      const input = officialInput(v.input_len);
      const full: string = v.hash_hex;
      assert.equal(toHex(blake3Hash(input)), full.slice(0, 64));
      assert.equal(toHex(blake3Hash(input, full.length / 2)), full);
      assert.equal(toHex(blake3Hash(input, 16)), full.slice(0, 32));
    });
  }
});

Deno.test("blake3DeriveKey() matches the official derive_key vectors", async (t) => {
  for (const v of official.cases) {
    await t.step(`input length ${v.input_len}`, () => {
      const input = officialInput(v.input_len);
      const full: string = v.derive_key_hex;
      assert.equal(toHex(blake3DeriveKey(official.context_string, input)), full.slice(0, 64));
      assert.equal(
        toHex(blake3DeriveKey(official.context_string, input, full.length / 2)),
        full,
      );
      // A 16-byte key (AES-128) is the prefix of the 32-byte one.
      assert.equal(
        toHex(blake3DeriveKey(official.context_string, input, 16)),
        full.slice(0, 32),
      );
    });
  }
});

Deno.test("blake3 functions reject output lengths outside 1..65535", () => {
  for (const length of [0, -1, 1.5, 65536]) {
    assert.throws(() => blake3Hash(new Uint8Array(1), length), RangeError);
    assert.throws(() => blake3DeriveKey("ctx", new Uint8Array(1), length), RangeError);
  }
});
