/**
 * Microbenchmarks (`deno task bench`): seal and open per AEAD method and per crypto backend at
 * 2 B, 1 KiB and 16 KiB, the chunk framing on top, the replay filter, the multi-user key
 * search of an AEAD-2017 port (1 to 1000 users), a 2022 session subkey (BLAKE3 derive_key), and
 * one 16 KiB write per legacy stream cipher.
 *
 * Backends: node:crypto (sync), OpenSSL through FFI (sync; `seal` allocates its output,
 * `sealInto` writes into a reused buffer), and WebCrypto (async; AES-GCM only, as Deno's
 * WebCrypto has no ChaCha20-Poly1305) for comparison. Without `--allow-ffi` the OpenSSL rows are
 * skipped (ignored).
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import type { AeadPrimitive } from "../crypto/aead_primitive.ts";
import { setCryptoBackend } from "../crypto/backend.ts";
import { findMethod, METHOD_NAMES, type MethodInfo } from "../crypto/methods.ts";
import { createStreamCipher, streamCipherUnavailableReason } from "../crypto/stream_cipher.ts";
import { createNodeAead } from "../crypto/node_aead.ts";
import { loadOpenSslAead } from "../crypto/openssl_aead.ts";
import { ChunkDecoder, sealChunks } from "../protocol/aead_chunk.ts";
import { ReplayFilter } from "../protocol/replay_filter.ts";
import { aeadClientFraming, aeadMultiUserServerFraming } from "../protocol/aead_framing.ts";
import { evpBytesToKey } from "../crypto/kdf.ts";
import { blake3DeriveKeyOf } from "../crypto/blake3.ts";
import { blake3 } from "npm:@noble/hashes@2.4.0/blake3.js";

const SIZES: readonly [string, number][] = [["2 B", 2], ["1 KiB", 1024], ["16 KiB", 16384]];
const openssl = loadOpenSslAead();
/** The AEAD methods both backends have (OpenSSL alone has AES-192-GCM; neither XChaCha). */
const BOTH_BACKENDS = new Set(["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"]);
const methods: MethodInfo[] = METHOD_NAMES.map((name) => findMethod(name)!)
  .filter((method, i, all) =>
    method.family === "aead" && BOTH_BACKENDS.has(method.algorithm!) && all.indexOf(method) === i
  );

for (const method of methods) {
  const algorithm = method.algorithm!;
  const key = crypto.getRandomValues(new Uint8Array(method.keySize));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const node = createNodeAead(algorithm, key);
  const native = openssl?.createAead(algorithm, key);
  const webKey = algorithm === "chacha20-poly1305"
    ? undefined
    : await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);

  for (const [label, size] of SIZES) {
    const plain = crypto.getRandomValues(new Uint8Array(size));
    const sealed = new Uint8Array(node.seal(nonce, plain));
    const out = new Uint8Array(size + 16);
    const group = `${method.name} ${label}`;
    const sealRows: [string, AeadPrimitive | undefined, boolean][] = [
      ["node:crypto", node, false],
      ["openssl", native, false],
      ["openssl into", native, true],
    ];
    for (const [name, primitive, into] of sealRows) {
      Deno.bench({
        name: `seal ${group} ${name}`,
        group: `seal ${group}`,
        baseline: name === "node:crypto",
        ignore: !primitive,
        fn: into ? () => void primitive!.sealInto!(nonce, plain, out) : () => {
          primitive!.seal(nonce, plain);
        },
      });
      Deno.bench({
        name: `open ${group} ${name}`,
        group: `open ${group}`,
        baseline: name === "node:crypto",
        ignore: !primitive,
        fn: into ? () => void primitive!.openInto!(nonce, sealed, out) : () => {
          if (!primitive!.open(nonce, sealed)) throw new Error("Tag mismatch in benchmark");
        },
      });
    }
    const webParams = { name: "AES-GCM", iv: nonce, tagLength: 128 };
    Deno.bench({
      name: `seal ${group} webcrypto (async)`,
      group: `seal ${group}`,
      ignore: !webKey,
      fn: async () => {
        await crypto.subtle.encrypt(webParams, webKey!, plain);
      },
    });
    Deno.bench({
      name: `open ${group} webcrypto (async)`,
      group: `open ${group}`,
      ignore: !webKey,
      fn: async () => {
        await crypto.subtle.decrypt(webParams, webKey!, sealed);
      },
    });
  }

  // The framing on top: one full 16 KiB write sealed into chunks, then decoded again.
  const payload = crypto.getRandomValues(new Uint8Array(16384));
  for (const backend of ["node", "openssl"] as const) {
    if (backend === "openssl" && !openssl) continue;
    setCryptoBackend(backend);
    const encoder = new AeadCipher(algorithm, key);
    const decoder = new ChunkDecoder(new AeadCipher(algorithm, key));
    setCryptoBackend(undefined);
    Deno.bench({
      name: `chunks ${method.name} 16 KiB seal+decode ${backend}`,
      group: `chunks ${method.name}`,
      baseline: backend === "node",
      fn: () => {
        let wire = sealChunks(encoder, payload);
        while (wire.length > 0) {
          const step = decoder.next(wire);
          wire = wire.subarray(step.consumed);
        }
      },
    });
  }
}

// Replay filter: a fresh salt (the common case) and a replayed one, at the default capacity.
const SALT_POOL = 4096;
const salts = Array.from(
  { length: SALT_POOL },
  () => crypto.getRandomValues(new Uint8Array(32)),
);
const filter = new ReplayFilter();
let next = 0;
Deno.bench({
  name: "replay checkAndAdd new salt (32 B)",
  group: "replay",
  baseline: true,
  fn: () => {
    // Varying the first bytes makes every salt new while keeping the pool small.
    const salt = salts[next++ % SALT_POOL]!;
    salt[0] = next & 0xff;
    salt[1] = (next >> 8) & 0xff;
    salt[2] = (next >> 16) & 0xff;
    filter.checkAndAdd(salt);
  },
});
const seen = new ReplayFilter();
const replayed = salts[0]!.slice();
seen.checkAndAdd(replayed);
Deno.bench({
  name: "replay checkAndAdd replayed salt (32 B)",
  group: "replay",
  fn: () => {
    if (!seen.checkAndAdd(replayed)) throw new Error("Replay not detected in benchmark");
  },
});

// BLAKE3 derive_key of a 2022 session subkey (PSK ‖ salt, one block): our one-block path
// (crypto/blake3.ts) against the library it bypasses.
{
  const context = "shadowsocks 2022 session subkey";
  const contextBytes = new TextEncoder().encode(context);
  for (const size of [16, 32]) {
    const psk = crypto.getRandomValues(new Uint8Array(size));
    const salt = crypto.getRandomValues(new Uint8Array(size));
    const material = new Uint8Array([...psk, ...salt]);
    Deno.bench({
      name: `BLAKE3 derive_key ${size * 2} B, one block (ours)`,
      group: `BLAKE3 derive_key ${size * 2} B`,
      baseline: true,
      fn: () => {
        blake3DeriveKeyOf(context, psk, salt, size);
      },
    });
    Deno.bench({
      name: `BLAKE3 derive_key ${size * 2} B, @noble/hashes`,
      group: `BLAKE3 derive_key ${size * 2} B`,
      fn: () => {
        blake3(material, { context: contextBytes, dkLen: size });
      },
    });
  }
}

// Multi-user AEAD-2017 (issue 11): a first flight tried against every user's key. The matching
// key is the last tried, the worst case a new client meets; a returning client's key is first.
{
  const method = findMethod("aes-256-gcm")!;
  const target = { type: "ipv4", host: "127.0.0.1", port: 443 } as const;
  for (const count of [1, 10, 100, 1000]) {
    const keys = Array.from({ length: count }, (_, i) => ({
      name: `user${i}`,
      masterKey: evpBytesToKey(`password ${i}`, method.keySize),
    }));
    const flight = aeadClientFraming(method, keys[count - 1]!.masterKey, target).seal(
      new Uint8Array(100),
    );
    Deno.bench({
      name: `aes-256-gcm first flight, key found among ${count} users (last tried)`,
      group: "multi-user key search",
      baseline: count === 1,
      fn() {
        // A copy each time: a server opens chunks in place, in its own buffer.
        aeadMultiUserServerFraming(method, keys).open(flight.slice());
      },
    });
  }
}

// Legacy stream ciphers: one 16 KiB write through one direction, with the backend in use.
{
  const data = crypto.getRandomValues(new Uint8Array(16384));
  const out = new Uint8Array(data.length);
  for (const method of METHOD_NAMES.map((name) => findMethod(name)!)) {
    if (method.stream === undefined) continue;
    const key = crypto.getRandomValues(new Uint8Array(Math.max(method.keySize, 8)));
    const iv = crypto.getRandomValues(new Uint8Array(method.saltSize));
    const unavailable = streamCipherUnavailableReason(method.stream) !== undefined;
    const cipher = unavailable ? undefined : createStreamCipher(method.stream, key, iv);
    Deno.bench({
      name: `stream ${method.name} 16 KiB`,
      group: "stream ciphers 16 KiB",
      baseline: method.name === "aes-128-ctr",
      ignore: unavailable,
      fn: () => cipher!.updateInto(data, out),
    });
  }
}
