import { createHash, createHmac, hkdfSync } from "node:crypto";
import { assertEquals } from "../_assert.ts";
import { deriveSessionSubkey, hkdfSha1 } from "../../crypto/kdf.ts";
import { loadOpenSslAead } from "../../crypto/openssl_aead.ts";
import {
  hmacSha1Into,
  sha1Into,
  sha1IsNative,
  type Sha1Transform,
  useSha1Transform,
} from "../../crypto/sha1.ts";

const random = (length: number) => crypto.getRandomValues(new Uint8Array(length));

const nativeTransform = loadOpenSslAead()?.sha1Transform ?? null;

/**
 * Registers `fn` twice: on this repository's block function and on OpenSSL's `SHA1_Transform`
 * (the one a server runs with the OpenSSL backend), then puts back what was in use.
 */
function testBothBlockFunctions(name: string, fn: () => void): void {
  const modes: [string, Sha1Transform | null][] = [["JavaScript", null], [
    "OpenSSL",
    nativeTransform,
  ]];
  for (const [mode, transform] of modes) {
    Deno.test({
      name: `${name} (${mode} block function)`,
      ignore: mode === "OpenSSL" && transform === null,
      fn() {
        const before = sha1IsNative();
        assertEquals(useSha1Transform(transform), true);
        assertEquals(sha1IsNative(), transform !== null);
        try {
          fn();
        } finally {
          useSha1Transform(before ? nativeTransform : null);
        }
      },
    });
  }
}

Deno.test("useSha1Transform() refuses a block function that disagrees with SHA-1", () => {
  const before = sha1IsNative();
  // Flips one bit of the state after a correct block: close, and still wrong.
  const offByOne: Sha1Transform = (context, block) => {
    nativeTransform?.(context, block);
    context[0]! ^= 1;
  };
  assertEquals(useSha1Transform(offByOne), false);
  assertEquals(sha1IsNative(), false);
  const data = random(100);
  const ours = new Uint8Array(20);
  sha1Into([data], ours);
  assertEquals(ours, new Uint8Array(createHash("sha1").update(data).digest()));
  useSha1Transform(before ? nativeTransform : null);
});

testBothBlockFunctions(
  "sha1Into() matches node:crypto at every length across the padding boundaries",
  () => {
    for (let length = 0; length <= 200; length++) {
      const data = random(length);
      const ours = new Uint8Array(20);
      // Split in two parts at a length-dependent point: parts are hashed as one message.
      sha1Into([data.subarray(0, length >> 1), data.subarray(length >> 1)], ours);
      assertEquals(ours, new Uint8Array(createHash("sha1").update(data).digest()), `${length}`);
    }
  },
);

testBothBlockFunctions(
  "hmacSha1Into() matches node:crypto for keys shorter and longer than a block",
  () => {
    for (const keyLength of [0, 1, 16, 20, 32, 63, 64, 65, 100]) {
      const key = random(keyLength);
      const message = random(keyLength + 7);
      const ours = new Uint8Array(20);
      hmacSha1Into(key, [message], ours);
      assertEquals(ours, new Uint8Array(createHmac("sha1", key).update(message).digest()));
    }
  },
);

testBothBlockFunctions("hkdfSha1() and the session subkey match node:crypto's hkdfSync", () => {
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
