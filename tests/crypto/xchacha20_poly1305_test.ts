import assert from "node:assert/strict";
import { createXChaCha20Poly1305, hchacha20 } from "../../crypto/xchacha20_poly1305.ts";
import { hex, toHex, utf8 } from "./_vectors2022.ts";

// draft-irtf-cfrg-xchacha-03, section 2.2.1 (HChaCha20) and appendix A.3.1 (AEAD).
Deno.test("hchacha20() matches the draft's test vector", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const nonce = hex("000000090000004a0000000031415927");
  assert.equal(
    toHex(hchacha20(key, nonce)),
    "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc",
  );
});

Deno.test("createXChaCha20Poly1305() matches the draft's AEAD vector", () => {
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
  const aad = hex("50515253c0c1c2c3c4c5c6c7");
  const plaintext = utf8(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
      "future, sunscreen would be it.",
  );
  const expected = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb" +
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452" +
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9" +
    "21f9664c97637da9768812f615c68b13b52e" +
    "c0875924c1c7987947deafd8780acf49";
  const aead = createXChaCha20Poly1305(key, { aad });
  const sealed = aead.seal(nonce, plaintext);
  assert.equal(toHex(sealed), expected);
  assert.deepEqual(aead.open(nonce, sealed), plaintext);
  assert.equal(createXChaCha20Poly1305(key).open(nonce, sealed), null, "AAD is bound");
});

Deno.test("createXChaCha20Poly1305() fails closed on every flipped byte", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const aead = createXChaCha20Poly1305(key);
  const sealed = aead.seal(nonce, utf8("hello, 2022"));
  for (let i = 0; i < sealed.length; i++) {
    const bad = sealed.slice();
    bad[i]! ^= 0x80;
    assert.equal(aead.open(nonce, bad), null, `byte ${i}`);
  }
  for (let i = 0; i < nonce.length; i++) {
    const badNonce = nonce.slice();
    badNonce[i]! ^= 0x01;
    assert.equal(aead.open(badNonce, sealed), null, `nonce byte ${i}`);
  }
  assert.equal(aead.open(nonce, sealed.subarray(0, 15)), null);
  assert.deepEqual(aead.seal(nonce, new Uint8Array(0)).length, 16);
  assert.throws(() => aead.seal(new Uint8Array(12), new Uint8Array(1)), RangeError);
  assert.throws(() => createXChaCha20Poly1305(new Uint8Array(16)), RangeError);
});
