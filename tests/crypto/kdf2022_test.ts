import assert from "node:assert/strict";
import { blake3DeriveKey } from "../../crypto/blake3.ts";
import {
  deriveIdentitySubkey,
  deriveSessionSubkey2022,
  generatePsk,
  IDENTITY_SUBKEY_CONTEXT,
  InvalidPskError,
  parsePasswordChain,
  parsePsk,
  pskIdentityHash,
  sessionSubkey2022View,
  supportsIdentityHeaders,
} from "../../crypto/kdf2022.ts";
import {
  base64,
  loadVectors,
  method,
  METHODS_2022,
  toBase64,
  toHex,
  utf8,
} from "./_vectors2022.ts";

const { vectors } = await loadVectors("sip022_sip023.json");
// deno-lint-ignore no-explicit-any
const byName = (prefix: string): any => vectors.find((v: any) => v.name.startsWith(prefix));

Deno.test("deriveSessionSubkey2022() matches the published SIP022 session subkey", () => {
  const v = byName("TCP session subkey");
  const subkey = deriveSessionSubkey2022(base64(v.psk_base64), base64(v.salt_base64));
  assert.equal(toBase64(subkey), v.subkey_base64);
  // The AES-128 subkey is the 16-byte prefix of the same output.
  assert.deepEqual(
    deriveSessionSubkey2022(base64(v.psk_base64), base64(v.salt_base64), 16),
    subkey.subarray(0, 16),
  );
});

Deno.test("sessionSubkey2022View() is the published subkey, in a buffer the next call reuses", () => {
  const v = byName("TCP session subkey");
  const psk = base64(v.psk_base64);
  const salt = base64(v.salt_base64);
  const view = sessionSubkey2022View(psk, salt);
  assert.equal(toBase64(view), v.subkey_base64);
  // AES-128's subkey is the published one's first 16 bytes (the view itself is reused: compare
  // with the vector, not with `view`).
  assert.equal(
    toBase64(sessionSubkey2022View(psk, salt, 16)),
    toBase64(base64(v.subkey_base64).subarray(0, 16)),
  );
  const other = sessionSubkey2022View(psk, new Uint8Array(salt.length));
  assert.equal(other.buffer, view.buffer, "the same scratch: callers copy the key at once");
  assert.deepEqual(other, deriveSessionSubkey2022(psk, new Uint8Array(salt.length)));
});

Deno.test("the identity-subkey context matches the published derive_key answer", () => {
  const v = byName("derive_key with the identity-subkey context");
  assert.equal(IDENTITY_SUBKEY_CONTEXT, "shadowsocks 2022 identity subkey");
  const out = blake3DeriveKey(IDENTITY_SUBKEY_CONTEXT, utf8(v.input_utf8), 32);
  assert.equal(toBase64(out), v.output_base64);
  // deriveIdentitySubkey() is the same function over iPSK || salt.
  const text = utf8(v.input_utf8);
  assert.equal(
    toBase64(deriveIdentitySubkey(text.subarray(0, 10), text.subarray(10), 32)),
    v.output_base64,
  );
});

Deno.test("pskIdentityHash() matches the published PSK identity hash", () => {
  const v = byName("PSK identity hash");
  assert.equal(toHex(pskIdentityHash(base64(v.psk_base64))), v.identity_hash_hex);
});

Deno.test("parsePsk() accepts exact-length base64 with or without padding", async (t) => {
  for (const name of METHODS_2022) {
    await t.step(name, () => {
      const info = method(name);
      const key = crypto.getRandomValues(new Uint8Array(info.keySize));
      const text = toBase64(key);
      assert.deepEqual(parsePsk(info, text), key);
      assert.deepEqual(parsePsk(info, text.replace(/=+$/, "")), key);
    });
  }
});

Deno.test("parsePsk() names the method and both lengths for a wrong-length key", () => {
  const aes256 = method("2022-blake3-aes-256-gcm");
  const sixteen = toBase64(new Uint8Array(16).fill(7));
  assert.throws(() => parsePsk(aes256, sixteen), (e: unknown) => {
    assert.ok(e instanceof InvalidPskError);
    assert.equal(e.method, "2022-blake3-aes-256-gcm");
    assert.equal(
      e.message,
      "Invalid key for 2022-blake3-aes-256-gcm: expected 32 bytes of base64, got 16",
    );
    assert.ok(!e.message.includes(sixteen), "the key text never appears");
    return true;
  });
  const aes128 = method("2022-blake3-aes-128-gcm");
  assert.throws(
    () => parsePsk(aes128, toBase64(new Uint8Array(32))),
    { message: "Invalid key for 2022-blake3-aes-128-gcm: expected 16 bytes of base64, got 32" },
  );
  assert.throws(
    () => parsePsk(aes128, ""),
    { message: "Invalid key for 2022-blake3-aes-128-gcm: expected 16 bytes of base64, got 0" },
  );
});

Deno.test("parsePsk() detects text that is not base64", async (t) => {
  const aes128 = method("2022-blake3-aes-128-gcm");
  const good = toBase64(new Uint8Array(16).fill(0xab)); // "q6urq6urq6urq6urq6urqw=="
  const bad = [
    "correct horse battery staple",
    good.replace("q", "-"), // URL-safe alphabet
    good.replace("q", "_"),
    ` ${good}`,
    `${good}\n`,
    good.slice(0, 5) + " " + good.slice(5),
    good.replace(/w==$/, "x=="), // non-canonical: stray low bits in the last symbol
    good + "=", // too much padding
    good.slice(0, -2) + "=", // wrong padding
    "q6urq", // length 1 mod 4
  ];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parsePsk(aes128, text), {
        name: "InvalidPskError",
        message:
          "Invalid key for 2022-blake3-aes-128-gcm: expected 16 bytes of base64, got text that is not base64",
      });
    });
  }
});

Deno.test("generatePsk() makes fresh keys that parsePsk() accepts", async (t) => {
  for (const name of METHODS_2022) {
    await t.step(name, () => {
      const info = method(name);
      const a = generatePsk(info);
      const b = generatePsk(info);
      assert.notEqual(a, b);
      assert.equal(parsePsk(info, a).length, info.keySize);
      assert.equal(a.length, info.keySize === 16 ? 24 : 44);
    });
  }
  assert.throws(() => generatePsk(method("none")), RangeError);
});

Deno.test("parsePasswordChain() splits iPSK:...:uPSK from the right", () => {
  const info = method("2022-blake3-aes-256-gcm");
  const [k1, k2, k3] = [1, 2, 3].map(() => crypto.getRandomValues(new Uint8Array(32))) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const single = parsePasswordChain(info, toBase64(k1));
  assert.deepEqual(single, { identityPsks: [], userPsk: k1 });
  const chain = parsePasswordChain(info, [k1, k2, k3].map(toBase64).join(":"));
  assert.deepEqual(chain, { identityPsks: [k1, k2], userPsk: k3 });
});

Deno.test("parsePasswordChain() names the bad part and refuses chains for ChaCha", () => {
  const aes = method("2022-blake3-aes-128-gcm");
  const good = toBase64(new Uint8Array(16));
  assert.throws(() => parsePasswordChain(aes, `${good}:${toBase64(new Uint8Array(8))}`), {
    message:
      "Invalid key (part 2 of 2) for 2022-blake3-aes-128-gcm: expected 16 bytes of base64, got 8",
  });
  assert.throws(() => parsePasswordChain(aes, `${good}:`), {
    message:
      "Invalid key (part 2 of 2) for 2022-blake3-aes-128-gcm: expected 16 bytes of base64, got 0",
  });
  const chacha = method("2022-blake3-chacha20-poly1305");
  const key = toBase64(new Uint8Array(32));
  assert.throws(() => parsePasswordChain(chacha, `${key}:${key}`), InvalidPskError);
  assert.equal(supportsIdentityHeaders(chacha), false);
  assert.equal(supportsIdentityHeaders(aes), true);
  assert.equal(supportsIdentityHeaders(method("aes-128-gcm")), false);
});

Deno.test("findMethod() knows the three 2022 methods and their sizes", () => {
  const expected = [
    ["2022-blake3-aes-128-gcm", 16, "aes-128-gcm"],
    ["2022-blake3-aes-256-gcm", 32, "aes-256-gcm"],
    ["2022-blake3-chacha20-poly1305", 32, "chacha20-poly1305"],
  ] as const;
  for (const [name, size, algorithm] of expected) {
    const info = method(name);
    assert.equal(info.family, "aead2022");
    assert.equal(info.keySize, size);
    assert.equal(info.saltSize, size);
    assert.equal(info.tagSize, 16);
    assert.equal(info.algorithm, algorithm);
  }
});
