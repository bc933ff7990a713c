import { assertEquals, assertThrows } from "../_assert.ts";
import { createCipheriv } from "node:crypto";
import { AeadCipher } from "../../crypto/aead_cipher.ts";
import { deriveSessionSubkey, evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod } from "../../crypto/methods.ts";
import { ChunkDecoder, MAX_AEAD_PAYLOAD } from "../../protocol/aead_chunk.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { hex, loadVectors, toHex } from "../_vectors.ts";

Deno.test("AeadCipher's nonce counts little-endian from zero (the published counter vector)", async () => {
  const { vectors } = await loadVectors("nonce_counter.json");
  const [v] = vectors;
  assertEquals(v.start_hex, "0".repeat(24)); // the cipher's counter starts at zero
  const key = new Uint8Array(16).fill(7);
  const plain = Uint8Array.of(1, 2, 3);
  const cipher = new AeadCipher("aes-128-gcm", key);
  // The published vector is the nonce *used* on the last of `calls` seals.
  for (let i = 0; i < v.calls - 1; i++) cipher.seal(plain);
  const last = cipher.seal(plain);
  const reference = createCipheriv("aes-128-gcm", key, Uint8Array.from(v.expected_bytes));
  const expected = [...reference.update(plain), ...reference.final(), ...reference.getAuthTag()];
  assertEquals(Array.from(last), expected);
});

Deno.test("AeadCipher decrypts the published AEAD-2017 TCP streams", async (t) => {
  const { vectors } = await loadVectors("aead2017_tcp_stream.json");
  // deno-lint-ignore no-explicit-any
  const ours = vectors.filter((v: any) => findMethod(v.method));
  assertEquals(ours.length, 10); // with aes-192-gcm and xchacha20-ietf-poly1305
  for (const v of ours) {
    await t.step(`${v.method}: ${v.plaintext_utf8.slice(0, 12)}…`, () => {
      const method = findMethod(v.method)!;
      const stream = hex(v.ciphertext_hex);
      const salt = stream.subarray(0, method.saltSize);
      const subkey = deriveSessionSubkey(evpBytesToKey(v.password_utf8, method.keySize), salt);
      const decoder = new ChunkDecoder(new AeadCipher(method.algorithm!, subkey), MAX_AEAD_PAYLOAD);
      let rest = stream.subarray(method.saltSize);
      const parts: Uint8Array[] = [];
      while (rest.length > 0) {
        const step = decoder.next(rest);
        if (step.consumed === 0) throw new Error("stream ended inside a chunk");
        rest = rest.subarray(step.consumed);
        if (step.payload) parts.push(step.payload);
      }
      const text = new TextDecoder().decode(new Uint8Array(parts.flatMap((p) => [...p])));
      assertEquals(text, v.plaintext_utf8);
    });
  }
});

Deno.test("AeadCipher round-trips and advances the nonce after each unit", async (t) => {
  for (const name of ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]) {
    await t.step(name, () => {
      const method = findMethod(name)!;
      const key = crypto.getRandomValues(new Uint8Array(method.keySize));
      const sealer = new AeadCipher(method.algorithm!, key);
      const opener = new AeadCipher(method.algorithm!, key);
      const a = sealer.seal(new Uint8Array([1, 2, 3]));
      const b = sealer.seal(new Uint8Array([1, 2, 3]));
      assertEquals(a.length, 3 + 16);
      assertEquals(toHex(a) === toHex(b), false, "same plaintext must seal differently");
      assertEquals(Array.from(opener.open(a)), [1, 2, 3]);
      assertEquals(Array.from(opener.open(b)), [1, 2, 3]);
      assertEquals(sealer.seal(new Uint8Array(0)).length, 16);
    });
  }
});

Deno.test("AeadCipher.open() throws ERR_CIPHER for every flipped byte", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealed = new AeadCipher("chacha20-poly1305", key).seal(new Uint8Array(20).fill(7));
  for (let i = 0; i < sealed.length; i++) {
    const tampered = sealed.slice();
    tampered[i]! ^= 0x01;
    const error = assertThrows(() => new AeadCipher("chacha20-poly1305", key).open(tampered));
    assertEquals((error as ProtocolError).code, "ERR_CIPHER");
  }
  assertThrows(() => new AeadCipher("chacha20-poly1305", key).open(sealed.subarray(0, 10)));
});
