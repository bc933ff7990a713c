import { createHash, createHmac, hkdfSync } from "node:crypto";
import { assertEquals } from "../_assert.ts";
import { deriveSessionSubkey, hkdfSha1 } from "../../crypto/kdf.ts";
import { hmacSha1Into, sha1Into } from "../../crypto/sha1.ts";

const random = (length: number) => crypto.getRandomValues(new Uint8Array(length));

Deno.test("sha1Into() matches node:crypto at every length across the padding boundaries", () => {
  for (let length = 0; length <= 200; length++) {
    const data = random(length);
    const ours = new Uint8Array(20);
    // Split in two parts at a length-dependent point: parts are hashed as one message.
    sha1Into([data.subarray(0, length >> 1), data.subarray(length >> 1)], ours);
    assertEquals(ours, new Uint8Array(createHash("sha1").update(data).digest()), `${length}`);
  }
});

Deno.test("hmacSha1Into() matches node:crypto for keys shorter and longer than a block", () => {
  for (const keyLength of [0, 1, 16, 20, 32, 63, 64, 65, 100]) {
    const key = random(keyLength);
    const message = random(keyLength + 7);
    const ours = new Uint8Array(20);
    hmacSha1Into(key, [message], ours);
    assertEquals(ours, new Uint8Array(createHmac("sha1", key).update(message).digest()));
  }
});

Deno.test("hkdfSha1() and the session subkey match node:crypto's hkdfSync", () => {
  const info = new TextEncoder().encode("ss-subkey");
  for (const keySize of [16, 24, 32]) {
    for (let i = 0; i < 50; i++) {
      const masterKey = random(keySize);
      const salt = random(keySize);
      const expected = new Uint8Array(hkdfSync("sha1", masterKey, salt, info, keySize));
      assertEquals(deriveSessionSubkey(masterKey, salt), expected);
    }
  }
  for (const length of [0, 1, 20, 21, 40, 41, 100]) {
    const ikm = random(22);
    const salt = random(13);
    const expected = new Uint8Array(hkdfSync("sha1", ikm, salt, info, length));
    assertEquals(hkdfSha1(ikm, salt, info, length), expected, `${length}`);
  }
  // An empty salt means HashLen zero bytes.
  const ikm = random(16);
  assertEquals(
    hkdfSha1(ikm, new Uint8Array(0), info, 16),
    new Uint8Array(hkdfSync("sha1", ikm, new Uint8Array(0), info, 16)),
  );
});
