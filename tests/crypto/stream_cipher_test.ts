import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import {
  CipherUnavailableError,
  resolveCryptoBackend,
  setCryptoBackend,
} from "../../crypto/backend.ts";
import { evpBytesToKey } from "../../crypto/kdf.ts";
import { assertMethodAvailable, methodUnavailableReason } from "../../crypto/method_support.ts";
import { findMethod, METHOD_NAMES } from "../../crypto/methods.ts";
import { loadOpenSslStream } from "../../crypto/openssl_stream.ts";
import {
  createStreamCipher,
  rc4Md5Key,
  STREAM_ALGORITHM_SIZES,
  type StreamAlgorithm,
  streamCipherUnavailableReason,
} from "../../crypto/stream_cipher.ts";
import { substitutionTables } from "../../crypto/table_cipher.ts";
import { openUdpPacket } from "../../protocol/udp_packet.ts";
import { hex, loadVectors, toHex, utf8 } from "../_vectors.ts";

/** Every stream method ssdeno offers. */
const STREAM_METHODS = METHOD_NAMES.filter((name) => findMethod(name)!.family === "stream");
const BACKENDS = ["openssl", "node"] as const;
const openssl = loadOpenSslStream();

/** Runs `fn` with `backend` forced, then restores the default. */
function withBackend<T>(backend: "openssl" | "node", fn: () => T): T {
  setCryptoBackend(backend);
  try {
    return fn();
  } finally {
    setCryptoBackend(undefined);
  }
}

/** The backends usable here: OpenSSL only where it loads. */
function usableBackends(): readonly ("openssl" | "node")[] {
  if (!openssl) console.log("OpenSSL stream backend unavailable: testing the node backend only");
  return openssl ? BACKENDS : ["node"];
}

function transform(
  algorithm: StreamAlgorithm,
  key: Uint8Array,
  iv: Uint8Array,
  input: Uint8Array,
  options: { decrypt?: boolean; cuts?: readonly number[] } = {},
): Uint8Array {
  using cipher = createStreamCipher(algorithm, key, iv, { decrypt: options.decrypt ?? false });
  const out = new Uint8Array(input.length);
  let from = 0;
  for (const cut of [...(options.cuts ?? []), input.length]) {
    cipher.updateInto(input.subarray(from, cut), out.subarray(from, cut));
    from = cut;
  }
  return out;
}

function randomBytes(size: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(size));
}

Deno.test("findMethod() knows every stream method with its key and IV lengths", () => {
  assertEquals(STREAM_METHODS, [
    "table",
    "rc4-md5",
    "aes-128-cfb",
    "aes-192-cfb",
    "aes-256-cfb",
    "aes-128-ctr",
    "aes-192-ctr",
    "aes-256-ctr",
    "camellia-128-cfb",
    "camellia-192-cfb",
    "camellia-256-cfb",
    "bf-cfb",
    "chacha20",
    "chacha20-ietf",
    "salsa20",
  ]);
  for (const name of STREAM_METHODS) {
    const method = findMethod(name)!;
    assertEquals(method.stream, name);
    assertEquals(method.tagSize, 0);
    if (name === "table") continue;
    assertEquals(method.keySize, STREAM_ALGORITHM_SIZES[method.stream!].keySize, name);
    assertEquals(method.saltSize, STREAM_ALGORITHM_SIZES[method.stream!].ivSize, name);
  }
  assertEquals(findMethod("CHACHA20-IETF")?.saltSize, 12);
  assertEquals(findMethod("table")?.saltSize, 0);
});

Deno.test("createStreamCipher() decrypts every published stream vector", async (t) => {
  const { vectors } = await loadVectors("stream_ciphers.json");
  assertEquals(vectors.length, 32);
  for (const backend of usableBackends()) {
    for (const [index, v] of vectors.entries()) {
      await t.step(`${backend}: ${v.method} #${index}`, () => {
        const wire = hex(v.ciphertext_hex);
        const iv = wire.subarray(0, v.iv_len);
        const body = wire.subarray(v.iv_len);
        const plain = utf8(v.plaintext_utf8);
        if (v.method === "none") {
          // The identity: what the `none` method's packets carry.
          assertEquals(openUdpPacket(findMethod("none")!, new Uint8Array(0), body), plain);
          return;
        }
        const key = evpBytesToKey(v.password_utf8, v.key_len);
        // rc4-md5-6 is rc4-md5 with a 6-byte IV: RC4 keyed by MD5(key ‖ IV).
        const [algorithm, cipherKey, cipherIv]: [StreamAlgorithm, Uint8Array, Uint8Array] =
          v.method === "rc4-md5-6"
            ? ["rc4", rc4Md5Key(key, iv), new Uint8Array(0)]
            : [v.method, key, iv];
        const reason = withBackend(backend, () => streamCipherUnavailableReason(algorithm));
        if (reason !== undefined) {
          // Only node:crypto lacks ciphers, and then it says so.
          assertEquals(backend, "node", reason);
          const error = assertThrows(() =>
            withBackend(backend, () => createStreamCipher(algorithm, cipherKey, cipherIv))
          );
          assertOk(error instanceof CipherUnavailableError, String(error));
          return;
        }
        withBackend(backend, () => {
          const cuts = [1, 3, Math.min(40, body.length)];
          assertEquals(
            toHex(transform(algorithm, cipherKey, cipherIv, body, { decrypt: true, cuts })),
            toHex(plain),
          );
          assertEquals(toHex(transform(algorithm, cipherKey, cipherIv, plain)), toHex(body));
        });
      });
    }
  }
});

Deno.test("the table cipher reproduces the published tables and ciphertext", async (t) => {
  const { vectors } = await loadVectors("table_cipher.json");
  assertEquals(vectors.length, 4);
  for (const v of vectors) {
    await t.step(`${v.password_utf8}${v.plaintext_utf8 ? " encryption" : " tables"}`, () => {
      const password = utf8(v.password_utf8);
      if (v.encrypt_table) {
        const tables = substitutionTables(password);
        assertEquals(Array.from(tables.encrypt), v.encrypt_table);
        assertEquals(Array.from(tables.decrypt), v.decrypt_table);
        return;
      }
      const plain = utf8(v.plaintext_utf8);
      const cipher = transform("table", password, new Uint8Array(0), plain);
      assertEquals(Array.from(cipher), v.ciphertext_bytes);
      assertEquals(
        transform("table", password, new Uint8Array(0), cipher, { decrypt: true }),
        plain,
      );
    });
  }
});

Deno.test("Camellia-CFB and Blowfish-CFB start with the block cipher's published answers", async (t) => {
  // CFB's first block is E(IV) xor plaintext: with the test plaintext as IV and a zero block,
  // the output is the block cipher's known answer (RFC 3713 Camellia; Schneier's Blowfish
  // variable-key vector for a 16-byte key).
  const camelliaText = hex("0123456789abcdeffedcba9876543210");
  const cases: [StreamAlgorithm, string, Uint8Array, string][] = [
    [
      "camellia-128-cfb",
      "0123456789abcdeffedcba9876543210",
      camelliaText,
      "67673138549669730857065648eabe43",
    ],
    [
      "camellia-192-cfb",
      "0123456789abcdeffedcba98765432100011223344556677",
      camelliaText,
      "b4993401b3e996f84ee5cee7d79b09b9",
    ],
    [
      "camellia-256-cfb",
      "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
      camelliaText,
      "9acc237dff16d76c20ef7c919e3a7509",
    ],
    ["bf-cfb", "f0e1d2c3b4a5968778695a4b3c2d1e0f", hex("fedcba9876543210"), "93142887ee3be15c"],
  ];
  for (const [algorithm, key, iv, expected] of cases) {
    await t.step(algorithm, () => {
      if (streamCipherUnavailableReason(algorithm) !== undefined) {
        console.log(`${algorithm}: ${streamCipherUnavailableReason(algorithm)}`);
        return;
      }
      const zero = new Uint8Array(iv.length);
      assertEquals(toHex(transform(algorithm, hex(key), iv, zero)), expected);
    });
  }
});

Deno.test("the keystream runs on across writes split at every offset", async (t) => {
  const size = 200;
  for (const backend of usableBackends()) {
    for (const name of STREAM_METHODS) {
      const algorithm = findMethod(name)!.stream!;
      if (withBackend(backend, () => streamCipherUnavailableReason(algorithm)) !== undefined) {
        continue;
      }
      await t.step(`${backend}: ${name}`, () => {
        withBackend(backend, () => {
          const sizes = STREAM_ALGORITHM_SIZES[algorithm];
          const key = randomBytes(sizes.keySize || 12);
          const iv = randomBytes(sizes.ivSize);
          const plain = randomBytes(size);
          const whole = transform(algorithm, key, iv, plain);
          assertOk(toHex(whole) !== toHex(plain), "ciphertext equals plaintext");
          for (let cut = 0; cut <= size; cut++) {
            assertEquals(transform(algorithm, key, iv, plain, { cuts: [cut] }), whole, `at ${cut}`);
            assertEquals(
              transform(algorithm, key, iv, whole, { decrypt: true, cuts: [cut] }),
              plain,
              `decrypt at ${cut}`,
            );
          }
          // Many small writes across several 64-byte blocks, some of them empty.
          const cuts = [0, 1, 1, 2, 5, 63, 64, 65, 66, 127, 129, 190, 199];
          assertEquals(transform(algorithm, key, iv, plain, { cuts }), whole);
          // In place: the output may be the input.
          using cipher = createStreamCipher(algorithm, key, iv);
          const copy = plain.slice();
          cipher.updateInto(copy.subarray(0, 70), copy.subarray(0, 70));
          cipher.updateInto(copy.subarray(70), copy.subarray(70));
          assertEquals(copy, whole);
        });
      });
    }
  }
});

Deno.test("node and OpenSSL backends give the same keystream for the ciphers both have", async (t) => {
  if (!openssl) return;
  for (const algorithm of ["aes-128-ctr", "aes-256-ctr", "chacha20", "chacha20-ietf"] as const) {
    await t.step(algorithm, () => {
      const sizes = STREAM_ALGORITHM_SIZES[algorithm];
      const key = randomBytes(sizes.keySize);
      const iv = randomBytes(sizes.ivSize);
      const plain = randomBytes(1000);
      const ours = withBackend("openssl", () => transform(algorithm, key, iv, plain));
      const theirs = withBackend("node", () => transform(algorithm, key, iv, plain));
      assertEquals(ours, theirs);
    });
  }
});

Deno.test("createStreamCipher() refuses keys and IVs of the wrong length", () => {
  for (const name of STREAM_METHODS) {
    const algorithm = findMethod(name)!.stream!;
    const sizes = STREAM_ALGORITHM_SIZES[algorithm];
    assertThrows(() =>
      createStreamCipher(algorithm, new Uint8Array(32), new Uint8Array(sizes.ivSize + 1))
    );
    if (algorithm === "table") continue;
    const error = assertThrows(() =>
      createStreamCipher(algorithm, new Uint8Array(sizes.keySize + 1), new Uint8Array(sizes.ivSize))
    );
    assertOk(error instanceof RangeError, `${name}: ${error}`);
  }
});

Deno.test("with the node backend, ciphers only OpenSSL has are refused with the reason", () => {
  withBackend("node", () => {
    for (const name of ["bf-cfb", "rc4-md5", "aes-128-cfb", "camellia-256-cfb", "aes-192-gcm"]) {
      const method = findMethod(name)!;
      const reason = methodUnavailableReason(method);
      assertOk(reason?.includes("OpenSSL"), `${name}: ${reason}`);
      const error = assertThrows(() => assertMethodAvailable(method));
      assertOk(error instanceof CipherUnavailableError);
      assertOk((error as Error).message.includes(`"${name}"`), (error as Error).message);
    }
    for (
      const name of ["table", "salsa20", "chacha20", "chacha20-ietf", "aes-256-ctr", "aes-128-gcm"]
    ) {
      assertEquals(methodUnavailableReason(findMethod(name)!), undefined, name);
    }
    assertOk(resolveCryptoBackend().name === "node");
  });
});

Deno.test("every stream method is available with the OpenSSL backend", () => {
  if (!openssl) return;
  withBackend("openssl", () => {
    for (const name of METHOD_NAMES) {
      assertEquals(methodUnavailableReason(findMethod(name)!), undefined, name);
    }
  });
});

Deno.test("OpenSSL stream contexts are freed by dispose()", () => {
  if (!openssl) return;
  const before = openssl.liveContexts;
  const cipher = openssl.create("aes-128-cfb", new Uint8Array(16), new Uint8Array(16));
  assertEquals(openssl.liveContexts, before + 1);
  cipher.dispose();
  cipher.dispose();
  assertEquals(openssl.liveContexts, before);
  assertThrows(() => cipher.updateInto(new Uint8Array(1), new Uint8Array(1)));
});
