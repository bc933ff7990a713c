import assert from "node:assert/strict";
import { blake3 } from "npm:@noble/hashes@2.4.0/blake3.js";
import {
  blake3DeriveKey,
  blake3DeriveKeyInto,
  blake3DeriveKeyOf,
  blake3Hash,
} from "../../crypto/blake3.ts";
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

Deno.test("blake3DeriveKey(), ...Of() and ...Into() agree with @noble/hashes for every one-block material", () => {
  // Our one-block compression (crypto/blake3.ts) against the library it bypasses: every material
  // length that fits a block, every output length up to 32, every split of the material into
  // head and tail, a 2022 context and one longer than a block (the library's path).
  const contexts = ["shadowsocks 2022 session subkey", "c".repeat(65), official.context_string];
  const material = crypto.getRandomValues(new Uint8Array(80));
  for (const context of contexts) {
    const contextBytes = new TextEncoder().encode(context);
    for (let length = 0; length <= 66; length++) {
      const input = material.subarray(0, length);
      for (const outLength of [1, 15, 16, 31, 32, 33]) {
        const expected = toHex(blake3(input, { context: contextBytes, dkLen: outLength }));
        assert.equal(toHex(blake3DeriveKey(context, input, outLength)), expected, `${length}`);
        for (const split of [0, length >> 1, length]) {
          const got = blake3DeriveKeyOf(
            context,
            input.subarray(0, split),
            input.subarray(split),
            outLength,
          );
          assert.equal(toHex(got), expected, `${length} split at ${split}`);
          const target = new Uint8Array(outLength + 2).fill(0xee).subarray(1, outLength + 1);
          const into = blake3DeriveKeyInto(
            context,
            input.subarray(0, split),
            input.subarray(split),
            target,
          );
          assert.equal(into, target, "written in place");
          assert.equal(toHex(into), expected, `into: ${length} split at ${split}`);
          const around = new Uint8Array(target.buffer);
          assert.deepEqual([around[0], around[outLength + 1]], [0xee, 0xee], "not beyond it");
        }
      }
    }
  }
});

Deno.test("a derived key is the caller's: the next derivation does not change it", () => {
  const first = blake3DeriveKeyOf("ctx", new Uint8Array(16).fill(1), new Uint8Array(16));
  const copy = first.slice();
  blake3DeriveKeyOf("ctx", new Uint8Array(16).fill(2), new Uint8Array(16));
  assert.deepEqual(first, copy);
});
