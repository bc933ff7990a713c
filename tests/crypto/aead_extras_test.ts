import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { AeadCipher } from "../../crypto/aead_cipher.ts";
import {
  aeadUnavailableReason,
  CipherUnavailableError,
  setCryptoBackend,
} from "../../crypto/backend.ts";
import { deriveSessionSubkey, evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod } from "../../crypto/methods.ts";
import { ChunkDecoder } from "../../protocol/aead_chunk.ts";
import { aeadClientFraming, aeadServerFraming } from "../../protocol/aead_framing.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { openUdpPacket, sealUdpPacket, udpPacketOverhead } from "../../protocol/udp_packet.ts";
import { hex, loadVectors } from "../_vectors.ts";

const EXTRAS = ["aes-192-gcm", "xchacha20-ietf-poly1305"] as const;

/** Skips aes-192-gcm (with a note) where the backend in use is node:crypto. */
function usable(name: string): boolean {
  const reason = aeadUnavailableReason(findMethod(name)!.algorithm!);
  if (reason !== undefined) console.log(`${name} skipped: ${reason}`);
  return reason === undefined;
}

Deno.test("the AEAD extras decrypt the published AEAD-2017 TCP streams", async (t) => {
  const { vectors } = await loadVectors("aead2017_tcp_stream.json");
  // deno-lint-ignore no-explicit-any
  const ours = vectors.filter((v: any) => (EXTRAS as readonly string[]).includes(v.method));
  assertEquals(ours.length, 4);
  for (const v of ours) {
    await t.step(`${v.method}: ${v.plaintext_utf8.slice(0, 12)}…`, () => {
      if (!usable(v.method)) return;
      const method = findMethod(v.method)!;
      assertEquals([method.keySize, method.saltSize], [v.key_len, v.salt_len]);
      const stream = hex(v.ciphertext_hex);
      const salt = stream.subarray(0, method.saltSize);
      const subkey = deriveSessionSubkey(evpBytesToKey(v.password_utf8, method.keySize), salt);
      const decoder = new ChunkDecoder(new AeadCipher(method.algorithm!, subkey));
      let rest = stream.subarray(method.saltSize);
      const parts: number[] = [];
      while (rest.length > 0) {
        const step = decoder.next(rest);
        assertOk(step.consumed > 0, "stream ended inside a chunk");
        rest = rest.subarray(step.consumed);
        if (step.payload) parts.push(...step.payload);
      }
      assertEquals(new TextDecoder().decode(new Uint8Array(parts)), v.plaintext_utf8);
    });
  }
});

Deno.test("the AEAD extras carry a TCP request and answer through the AEAD-2017 framings", async (t) => {
  for (const name of EXTRAS) {
    await t.step(name, () => {
      if (!usable(name)) return;
      const method = findMethod(name)!;
      const key = evpBytesToKey("extras", method.keySize);
      const target = { type: "domain", host: "example.com", port: 443 } as const;
      const client = aeadClientFraming(method, key, target);
      const server = aeadServerFraming(method, key);
      const flight = client.seal(Uint8Array.of(1, 2, 3));
      const step = server.open(flight);
      assertEquals(step.consumed, flight.length);
      assertEquals(step.request?.address, target);
      assertEquals(step.payload, Uint8Array.of(1, 2, 3));
      const answer = server.seal(Uint8Array.of(9, 8));
      const opened = client.open(answer);
      assertEquals(opened.consumed, answer.length);
      assertEquals(opened.payload, Uint8Array.of(9, 8));
      // A flipped byte in the first chunk is ERR_CIPHER.
      const tampered = aeadClientFraming(method, key, target).seal(Uint8Array.of(1));
      tampered[method.saltSize + 1]! ^= 1;
      const error = assertThrows(() => aeadServerFraming(method, key).open(tampered));
      assertEquals((error as ProtocolError).code, "ERR_CIPHER");
    });
  }
});

Deno.test("the AEAD extras seal and open UDP packets", async (t) => {
  for (const name of EXTRAS) {
    await t.step(name, () => {
      if (!usable(name)) return;
      const method = findMethod(name)!;
      const key = evpBytesToKey("udp extras", method.keySize);
      const plain = Uint8Array.of(1, 127, 0, 0, 1, 0, 53, 0xaa, 0xbb);
      const packet = sealUdpPacket(method, key, plain);
      assertEquals(packet.length, plain.length + udpPacketOverhead(method));
      assertEquals(udpPacketOverhead(method), method.saltSize + 16);
      assertEquals(openUdpPacket(method, key, packet), plain);
      packet[packet.length - 1]! ^= 1;
      const error = assertThrows(() => openUdpPacket(method, key, packet));
      assertEquals((error as ProtocolError).code, "ERR_CIPHER");
    });
  }
});

Deno.test("aes-192-gcm with the node backend is a CipherUnavailableError", () => {
  setCryptoBackend("node");
  try {
    const error = assertThrows(() => new AeadCipher("aes-192-gcm", new Uint8Array(24)));
    assertOk(error instanceof CipherUnavailableError, String(error));
    // XChaCha20-Poly1305 does not depend on the backend.
    const sealed = new AeadCipher("xchacha20-poly1305", new Uint8Array(32)).seal(Uint8Array.of(5));
    assertEquals(
      new AeadCipher("xchacha20-poly1305", new Uint8Array(32)).open(sealed),
      Uint8Array.of(5),
    );
  } finally {
    setCryptoBackend(undefined);
  }
});
