import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import type { AeadPrimitive } from "../../crypto/aead_primitive.ts";
import { AeadCipher } from "../../crypto/aead_cipher.ts";
import {
  createAeadPrimitive,
  resolveCryptoBackend,
  setCryptoBackend,
} from "../../crypto/backend.ts";
import type { AeadAlgorithm } from "../../crypto/methods.ts";
import { createNodeAead } from "../../crypto/node_aead.ts";
import { loadOpenSslAead, openSslUnavailableReason } from "../../crypto/openssl_aead.ts";
import { ProtocolError } from "../../protocol/errors.ts";

const ALGORITHMS: readonly AeadAlgorithm[] = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"];
const SIZES = [0, 1, 16383, 65535];
const openssl = loadOpenSslAead();

function keyFor(algorithm: AeadAlgorithm): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(algorithm === "aes-128-gcm" ? 16 : 32));
}

function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  // getRandomValues fills at most 65536 bytes per call.
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(at + 65536, size)));
  }
  return out;
}

/** The backends loadable in this process, by name. */
function backends(algorithm: AeadAlgorithm, key: Uint8Array): [string, AeadPrimitive][] {
  const list: [string, AeadPrimitive][] = [["node", createNodeAead(algorithm, key)]];
  if (openssl) list.push(["openssl", openssl.createAead(algorithm, key)]);
  return list;
}

function noteIfNodeOnly(): void {
  if (!openssl) console.log(`${openSslUnavailableReason()}: testing the node backend only`);
}

Deno.test("node and openssl backends seal identically and open each other's output", async (t) => {
  noteIfNodeOnly();
  for (const algorithm of ALGORITHMS) {
    await t.step(algorithm, () => {
      const key = keyFor(algorithm);
      const list = backends(algorithm, key);
      // Several messages on the same primitive: state must not leak from one call to the next.
      for (const size of SIZES) {
        const nonce = randomBytes(12);
        const plain = randomBytes(size);
        const sealed = list.map(([, primitive]) => primitive.seal(nonce, plain));
        for (const [i, [name]] of list.entries()) {
          assertEquals(sealed[i]!.length, size + 16, `${name} ${size}`);
          assertEquals(sealed[i], sealed[0], `${name} differs from node at ${size} bytes`);
        }
        for (const [name, primitive] of list) {
          assertEquals(primitive.open(nonce, sealed[0]!), plain, `${name} open ${size}`);
          const into = new Uint8Array(size + 16);
          assertEquals(primitive.sealInto!(nonce, plain, into), size + 16);
          assertEquals(into, sealed[0], `${name} sealInto ${size}`);
          const opened = new Uint8Array(size);
          assertEquals(primitive.openInto!(nonce, sealed[0]!, opened), size);
          assertEquals(opened, plain, `${name} openInto ${size}`);
        }
      }
    });
  }
});

Deno.test("open() rejects a flipped tag byte or ciphertext byte with every backend", async (t) => {
  noteIfNodeOnly();
  for (const algorithm of ALGORITHMS) {
    await t.step(algorithm, () => {
      const key = keyFor(algorithm);
      const nonce = randomBytes(12);
      const plain = randomBytes(100);
      for (const [name, primitive] of backends(algorithm, key)) {
        const sealed = primitive.seal(nonce, plain);
        for (const index of [0, 99, 100, 115]) {
          const bad = sealed.slice();
          bad[index]! ^= 0x01;
          assertEquals(primitive.open(nonce, bad), null, `${name} flipped byte ${index}`);
          assertEquals(primitive.openInto!(nonce, bad, new Uint8Array(100)), -1, name);
        }
        const otherNonce = nonce.slice();
        otherNonce[0]! ^= 0x80;
        assertEquals(primitive.open(otherNonce, sealed), null, `${name} wrong nonce`);
        assertEquals(primitive.open(nonce, sealed.subarray(0, 15)), null, `${name} short`);
        // A failure leaves the primitive usable.
        assertEquals(primitive.open(nonce, sealed), plain, `${name} after failures`);
      }
    });
  }
});

Deno.test({
  name: "the openssl backend decrypts in place and frees its contexts on dispose",
  ignore: !openssl,
  fn() {
    const key = keyFor("aes-256-gcm");
    const nonce = randomBytes(12);
    const plain = randomBytes(1000);
    const before = openssl!.liveContexts;
    const aead = openssl!.createAead("aes-256-gcm", key);
    const sealed = aead.seal(nonce, plain);
    assertEquals(aead.openInto(nonce, sealed, sealed), 1000);
    assertEquals(sealed.subarray(0, 1000), plain);
    assertEquals(openssl!.liveContexts, before + 2);
    aead.dispose();
    aead.dispose();
    assertEquals(openssl!.liveContexts, before);
    assertThrows(() => aead.seal(nonce, plain));
  },
});

Deno.test({
  name: "the openssl backend refuses a nonce that is not 12 bytes (OpenSSL would read past it)",
  ignore: !openssl,
  fn() {
    using aead = openssl!.createAead("aes-128-gcm", keyFor("aes-128-gcm"));
    const sealed = aead.seal(randomBytes(12), randomBytes(16));
    for (const size of [0, 8, 11, 13]) {
      for (
        const error of [
          assertThrows(() => aead.seal(randomBytes(size), randomBytes(16))),
          assertThrows(() => aead.open(randomBytes(size), sealed)),
        ]
      ) {
        assertOk(error instanceof RangeError && /Invalid nonce length/.test(error.message));
      }
    }
  },
});

Deno.test("setCryptoBackend() switches the backend AeadCipher uses", () => {
  try {
    setCryptoBackend("node");
    assertEquals(resolveCryptoBackend().name, "node");
    assertEquals("dispose" in createAeadPrimitive("aes-256-gcm", keyFor("aes-256-gcm")), false);
    const key = keyFor("chacha20-poly1305");
    const viaNode = new AeadCipher("chacha20-poly1305", key).seal(Uint8Array.of(1, 2, 3));
    if (openssl) {
      setCryptoBackend("openssl");
      assertEquals(resolveCryptoBackend().name, "openssl");
      const cipher = new AeadCipher("chacha20-poly1305", key);
      assertEquals(cipher.seal(Uint8Array.of(1, 2, 3)), viaNode);
      // The next nonce: a tampered unit is a typed error.
      const bad = cipher.seal(Uint8Array.of(4));
      bad[0]! ^= 1;
      const opener = new AeadCipher("chacha20-poly1305", key);
      opener.open(viaNode);
      const error = assertThrows(() => opener.openInto(bad, new Uint8Array(1)));
      assertOk(error instanceof ProtocolError && error.code === "ERR_CIPHER");
    } else {
      assertThrows(() => setCryptoBackend("openssl"));
    }
  } finally {
    setCryptoBackend(undefined);
  }
});

/** Runs a snippet with `deno run <flags> -` and returns what it printed. */
async function runSnippet(flags: string[], env: Record<string, string> = {}): Promise<string> {
  const backendUrl = new URL("../../crypto/backend.ts", import.meta.url).href;
  const cipherUrl = new URL("../../crypto/aead_cipher.ts", import.meta.url).href;
  const snippet = `
    import { resolveCryptoBackend } from "${backendUrl}";
    import { AeadCipher } from "${cipherUrl}";
    const key = new Uint8Array(32);
    const sealed = new AeadCipher("aes-256-gcm", key).seal(Uint8Array.of(42));
    const opened = new AeadCipher("aes-256-gcm", key).open(sealed);
    console.log(resolveCryptoBackend().name, opened[0]);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, "-"],
    env: { NO_COLOR: "1", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(snippet));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const printed = new TextDecoder().decode(stdout).trim();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  return printed;
}

Deno.test("without --allow-ffi the backend falls back to node without a prompt", async () => {
  assertEquals(await runSnippet(["--allow-read"]), "node 42");
});

Deno.test({
  name: "with --allow-ffi the default is openssl, and SSDENO_CRYPTO=node overrides it",
  ignore: !openssl,
  async fn() {
    assertEquals(await runSnippet(["--allow-read", "--allow-ffi"]), "openssl 42");
    const flags = ["--allow-read", "--allow-ffi", "--allow-env=SSDENO_CRYPTO"];
    assertEquals(await runSnippet(flags, { SSDENO_CRYPTO: "node" }), "node 42");
  },
});
