import assert from "node:assert/strict";
import { createDecipheriv, hkdfSync } from "node:crypto";
import { evpBytesToKey } from "../../crypto/kdf.ts";
import { findMethod, type MethodInfo } from "../../crypto/methods.ts";
import { type Address, encodeAddress } from "../../protocol/address.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { parseHostPort } from "../../protocol/host_port.ts";
import {
  decodeSocksUdpHeader,
  decodeUdpPlaintext,
  encodeSocksUdpHeader,
  encodeUdpPlaintext,
  openUdpPacket,
  sealUdpPacket,
  socksUdpHeaderLength,
  udpPacketOverhead,
} from "../../protocol/udp_packet.ts";

const AEAD = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;
const NODE_ALGORITHM = {
  "aes-128-gcm": "aes-128-gcm",
  "aes-256-gcm": "aes-256-gcm",
  "chacha20-ietf-poly1305": "chacha20-poly1305",
} as const;
const ADDRESSES: Address[] = [
  { type: "ipv4", host: "1.2.3.4", port: 53 },
  { type: "ipv6", host: "2001:db8::1", port: 443 },
  { type: "domain", host: "example.com", port: 65535 },
];

function method(name: string): MethodInfo {
  return findMethod(name)!;
}

function assertProtocolError(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof ProtocolError && error.code === code);
}

Deno.test("sealUdpPacket() matches an independent node:crypto opening with the zero nonce", async (t) => {
  for (const name of AEAD) {
    await t.step(name, () => {
      const info = method(name);
      const key = evpBytesToKey("udp-test", info.keySize);
      const plaintext = encodeUdpPlaintext(ADDRESSES[0]!, Uint8Array.of(1, 2, 3, 4, 5));
      const packet = sealUdpPacket(info, key, plaintext);
      assert.equal(packet.length, info.saltSize + plaintext.length + 16);
      const salt = packet.subarray(0, info.saltSize);
      const subkey = new Uint8Array(
        hkdfSync("sha1", key, salt, new TextEncoder().encode("ss-subkey"), info.keySize),
      );
      const decipher = createDecipheriv(
        NODE_ALGORITHM[name] as "aes-128-gcm",
        subkey,
        new Uint8Array(12),
        { authTagLength: 16 },
      );
      decipher.setAuthTag(packet.subarray(packet.length - 16));
      const opened = decipher.update(packet.subarray(info.saltSize, packet.length - 16));
      decipher.final();
      assert.deepEqual(new Uint8Array(opened), plaintext);
    });
  }
});

Deno.test("openUdpPacket() returns what sealUdpPacket() sealed, for every method and address", async (t) => {
  for (const name of [...AEAD, "none"]) {
    await t.step(name, () => {
      const info = method(name);
      const key = evpBytesToKey("udp-test", info.keySize);
      for (const address of ADDRESSES) {
        for (const size of [0, 1, 1000, 65_000]) {
          const payload = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
          const plaintext = encodeUdpPlaintext(address, payload);
          const packet = sealUdpPacket(info, key, plaintext);
          assert.equal(packet.length, plaintext.length + udpPacketOverhead(info));
          const opened = openUdpPacket(info, key, packet);
          assert.notEqual(opened.buffer, packet.buffer);
          const decoded = decodeUdpPlaintext(opened);
          assert.deepEqual(decoded.address, address);
          assert.deepEqual(decoded.payload, payload);
        }
      }
    });
  }
});

Deno.test("sealUdpPacket() uses a fresh salt per packet and writes into a given buffer", () => {
  const info = method("aes-256-gcm");
  const key = evpBytesToKey("udp-test", info.keySize);
  const plaintext = encodeUdpPlaintext(ADDRESSES[1]!, Uint8Array.of(9));
  const a = sealUdpPacket(info, key, plaintext);
  const b = sealUdpPacket(info, key, plaintext);
  assert.notDeepEqual(a.subarray(0, 32), b.subarray(0, 32));
  const out = new Uint8Array(1024);
  const c = sealUdpPacket(info, key, plaintext, out);
  assert.equal(c.buffer, out.buffer);
  assert.deepEqual(openUdpPacket(info, key, c), plaintext);
  assert.throws(() => sealUdpPacket(info, key, plaintext, new Uint8Array(10)), RangeError);
});

Deno.test("openUdpPacket() rejects every truncation and every flipped byte with ERR_CIPHER", async (t) => {
  for (const name of AEAD) {
    await t.step(name, () => {
      const info = method(name);
      const key = evpBytesToKey("udp-test", info.keySize);
      const packet = sealUdpPacket(info, key, encodeUdpPlaintext(ADDRESSES[2]!, Uint8Array.of(7)));
      for (let length = 0; length < packet.length; length++) {
        assertProtocolError(
          () => openUdpPacket(info, key, packet.subarray(0, length)),
          "ERR_CIPHER",
        );
      }
      for (let i = 0; i < packet.length; i++) {
        const tampered = packet.slice();
        tampered[i]! ^= 0x01;
        assertProtocolError(() => openUdpPacket(info, key, tampered), "ERR_CIPHER");
      }
      const otherKey = evpBytesToKey("another password", info.keySize);
      assertProtocolError(() => openUdpPacket(info, otherKey, packet), "ERR_CIPHER");
    });
  }
});

Deno.test("decodeUdpPlaintext() rejects a missing, unknown or cut address with ERR_READ_ADDRESS", () => {
  assertProtocolError(() => decodeUdpPlaintext(new Uint8Array(0)), "ERR_READ_ADDRESS");
  assertProtocolError(() => decodeUdpPlaintext(Uint8Array.of(0x05, 1, 2, 3)), "ERR_READ_ADDRESS");
  assertProtocolError(() => decodeUdpPlaintext(Uint8Array.of(0x03, 0, 0, 53)), "ERR_READ_ADDRESS");
  const full = encodeAddress(ADDRESSES[1]!);
  for (let length = 0; length < full.length; length++) {
    assertProtocolError(() => decodeUdpPlaintext(full.subarray(0, length)), "ERR_READ_ADDRESS");
  }
  const empty = decodeUdpPlaintext(full);
  assert.equal(empty.payload.length, 0);
});

Deno.test("encodeSocksUdpHeader() and decodeSocksUdpHeader() round-trip with FRAG and length", () => {
  for (const address of ADDRESSES) {
    const header = encodeSocksUdpHeader(address);
    assert.equal(header.length, socksUdpHeaderLength(address));
    assert.deepEqual(header.subarray(0, 3), Uint8Array.of(0, 0, 0));
    const datagram = new Uint8Array(header.length + 4);
    datagram.set(header);
    datagram.set(Uint8Array.of(1, 2, 3, 4), header.length);
    const decoded = decodeSocksUdpHeader(datagram);
    assert.deepEqual(decoded.address, address);
    assert.equal(decoded.fragment, 0);
    assert.equal(decoded.length, header.length);
    datagram[2] = 0x81;
    assert.equal(decodeSocksUdpHeader(datagram).fragment, 0x81);
  }
});

Deno.test("decodeSocksUdpHeader() rejects every strict prefix of a header", () => {
  const header = encodeSocksUdpHeader(ADDRESSES[2]!);
  for (let length = 0; length < header.length; length++) {
    assertProtocolError(() => decodeSocksUdpHeader(header.subarray(0, length)), "ERR_READ_ADDRESS");
  }
});

Deno.test("parseHostPort() reads names, IPv4 and bracketed IPv6, and names bad input", () => {
  assert.deepEqual(parseHostPort("1.1.1.1:53"), { type: "ipv4", host: "1.1.1.1", port: 53 });
  assert.deepEqual(parseHostPort("dns.example:853"), {
    type: "domain",
    host: "dns.example",
    port: 853,
  });
  assert.deepEqual(parseHostPort("[2606:4700::1111]:53"), {
    type: "ipv6",
    host: "2606:4700::1111",
    port: 53,
  });
  for (const bad of ["1.1.1.1", ":53", "host:0", "host:65536", "host:x", "::1:53", "[foo]:53"]) {
    assert.throws(
      () => parseHostPort(bad),
      (error: unknown) => error instanceof RangeError && error.message.includes(`"${bad}"`),
    );
  }
});
