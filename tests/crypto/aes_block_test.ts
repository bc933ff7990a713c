import assert from "node:assert/strict";
import { aesBlockCipherFor, createAesBlockCipher } from "../../crypto/aes_block.ts";
import { hex, toHex } from "./_vectors2022.ts";

// FIPS-197 appendix C.1 (AES-128) and C.3 (AES-256).
const PLAIN = "00112233445566778899aabbccddeeff";
const FIPS = [
  { key: "000102030405060708090a0b0c0d0e0f", cipher: "69c4e0d86a7b0430d8cdb78070b4c55a" },
  {
    key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    cipher: "8ea2b7ca516745bfeafc49904b496089",
  },
];

Deno.test("createAesBlockCipher() matches FIPS-197 for AES-128 and AES-256", async (t) => {
  for (const v of FIPS) {
    await t.step(`${v.key.length * 4}-bit key`, () => {
      const aes = createAesBlockCipher(hex(v.key));
      assert.equal(toHex(aes.encrypt(hex(PLAIN))), v.cipher);
      assert.equal(toHex(aes.decrypt(hex(v.cipher))), PLAIN);
    });
  }
});

Deno.test("createAesBlockCipher() keeps one cipher object across many blocks", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const reused = createAesBlockCipher(key);
  for (let i = 0; i < 50; i++) {
    const block = crypto.getRandomValues(new Uint8Array(16));
    const sealed = reused.encrypt(block);
    assert.deepEqual(sealed, createAesBlockCipher(key).encrypt(block));
    assert.deepEqual(reused.decrypt(sealed), block);
  }
  assert.equal(aesBlockCipherFor(key), aesBlockCipherFor(key));
});

Deno.test("createAesBlockCipher() rejects bad key and block sizes", () => {
  assert.throws(() => createAesBlockCipher(new Uint8Array(24)), RangeError);
  const aes = createAesBlockCipher(new Uint8Array(16));
  assert.throws(() => aes.encrypt(new Uint8Array(15)), RangeError);
  assert.throws(() => aes.decrypt(new Uint8Array(17)), RangeError);
});
