/**
 * Targets for a server opening a client's UDP packet: AEAD-2017 (`openUdpPacket` then
 * `decodeUdpPlaintext`, as relay/shadowsocks_udp.ts does) and the 2022 edition
 * (`openClientPacket`, single user, SIP023 users, and the XChaCha method). As for TCP, the
 * `*-plaintext`/`*-body` targets seal a mutated plaintext with the right key so the address and
 * 2022 body parsers see hostile content; the others mutate real packets.
 * @module
 */
import { aesBlockCipherFor } from "../crypto/aes_block.ts";
import { evpBytesToKey } from "../crypto/kdf.ts";
import { findMethod, type MethodInfo } from "../crypto/methods.ts";
import { createXChaCha20Poly1305 } from "../crypto/xchacha20_poly1305.ts";
import { encodeAddress } from "../protocol/address.ts";
import { clientKeys2022, serverKeys2022 } from "../protocol/aead2022_identity.ts";
import {
  createUdpSessionAead,
  encodeSeparateHeader,
  openClientPacket,
  sealClientPacket,
} from "../protocol/aead2022_udp.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  decodeUdpPlaintext,
  encodeUdpPlaintext,
  openUdpPacket,
  sealUdpPacket,
} from "../protocol/udp_packet.ts";
import {
  ADDRESSES,
  counting,
  FUZZ_NOW_S,
  fuzzNow,
  join,
  PAYLOADS,
  psk,
  u16,
  UTF8_EDGES,
} from "./_fixtures.ts";
import { type FuzzTarget, invariant } from "./target.ts";

const UDP_MAX_LENGTH = 4096;

function method(name: string): MethodInfo {
  const found = findMethod(name);
  if (found === undefined) throw new Error(`Unknown method "${name}"`);
  return found;
}

/** A packet's payload is a view of what it decrypted: never longer than the packet. */
function checkPayload(payload: Uint8Array, packetLength: number): void {
  invariant(
    payload.length <= packetLength,
    `payload of ${payload.length} bytes from a ${packetLength}-byte packet`,
  );
}

function udpAeadTarget(name: string, methodName: string, plaintext: boolean): FuzzTarget {
  const info = method(methodName);
  const masterKey = evpBytesToKey("fuzz-password", info.keySize);
  // A prefix as long as the salt fixes the salt: the same packets on every run.
  const salt = counting(info.saltSize, 5);
  const plaintexts = () =>
    ADDRESSES.map((address, i) => encodeUdpPlaintext(address, PAYLOADS[i % PAYLOADS.length]!));
  return {
    name,
    parser: `openUdpPacket(${methodName}), decodeUdpPlaintext()${
      plaintext ? " on sealed plaintext" : ""
    }`,
    typed: [ProtocolError],
    seeds: plaintext
      ? plaintexts
      : () => plaintexts().map((plain) => sealUdpPacket(info, masterKey, plain, undefined, salt)),
    dictionary: plaintext ? ["\x01", "\x03", "\x04", "\x00\x00", "\xff", ...UTF8_EDGES] : [],
    maxLength: UDP_MAX_LENGTH,
    run(input) {
      const packet = plaintext ? sealUdpPacket(info, masterKey, input, undefined, salt) : input;
      const decoded = decodeUdpPlaintext(openUdpPacket(info, masterKey, packet));
      checkPayload(decoded.payload, packet.length);
      return decoded;
    },
  };
}

/** Client packets of a few sessions; the XChaCha one sealed by hand (its nonce is random). */
function packets2022(info: MethodInfo, passwords: readonly string[]): Uint8Array[] {
  return ADDRESSES.map((address, i) => {
    const keys = clientKeys2022(info, passwords[i % passwords.length]!);
    const packet = {
      sessionId: BigInt(i + 1) << 40n,
      packetId: BigInt(i),
      address,
      payload: PAYLOADS[i % PAYLOADS.length]!,
    };
    if (info.algorithm !== "chacha20-poly1305") {
      return sealClientPacket(keys, packet, { now: fuzzNow });
    }
    const nonce = counting(24, i);
    const body = clientBody(encodeAddress(address), i % 3, packet.payload);
    const plain = join(encodeSeparateHeader(packet), body);
    return join(nonce, createXChaCha20Poly1305(keys.userPsk).seal(nonce, plain));
  });
}

/** A client → server body with zero padding (our encoder pads with random bytes). */
function clientBody(address: Uint8Array, padding: number, payload: Uint8Array): Uint8Array {
  const timestamp = new Uint8Array(8);
  new DataView(timestamp.buffer).setBigUint64(0, BigInt(FUZZ_NOW_S));
  return join(Uint8Array.of(0), timestamp, u16(padding), new Uint8Array(padding), address, payload);
}

function udp2022Target(
  name: string,
  methodName: string,
  users?: readonly { name: string; password: string }[],
): FuzzTarget {
  const info = method(methodName);
  const serverPsk = psk(info.keySize, 9);
  const keys = serverKeys2022(info, serverPsk, users);
  const passwords = users ? users.map((user) => `${serverPsk}:${user.password}`) : [serverPsk];
  return {
    name,
    parser: `openClientPacket(${methodName}${users ? `, ${users.length} users` : ""})`,
    typed: [ProtocolError],
    seeds: () => packets2022(info, passwords),
    maxLength: UDP_MAX_LENGTH,
    run(input) {
      const opened = openClientPacket(keys, input, { now: fuzzNow });
      checkPayload(opened.payload, input.length);
      return opened;
    },
  };
}

/** The body (type, timestamp, padding, address, payload) mutated, then sealed for the server. */
function body2022Target(name: string, methodName: string): FuzzTarget {
  const info = method(methodName);
  const serverPsk = psk(info.keySize, 11);
  const keys = serverKeys2022(info, serverPsk);
  const header = encodeSeparateHeader({ sessionId: 0x1234n, packetId: 7n });
  const aead = createUdpSessionAead(info, keys.psk, 0x1234n);
  const sealedHeader = aesBlockCipherFor(keys.psk).encrypt(header);
  return {
    name,
    parser: `openClientPacket(${methodName}) on sealed hostile bodies`,
    typed: [ProtocolError],
    seeds: () =>
      ADDRESSES.map((address, i) =>
        clientBody(
          encodeAddress(address),
          i % 2 === 0 ? 0 : 1 + i * 100,
          PAYLOADS[i % PAYLOADS.length]!,
        )
      ),
    dictionary: ["\x00", "\x01", "\x03", "\x04", "\x03\x84", "\x03\x85", "\xff\xff", ...UTF8_EDGES],
    maxLength: UDP_MAX_LENGTH,
    run(input) {
      const packet = join(sealedHeader, aead.seal(header.subarray(4), input));
      // The relay keeps one AEAD per session; the header here always names the same one.
      const opened = openClientPacket(keys, packet, { now: fuzzNow, aeadFor: () => aead });
      checkPayload(opened.payload, packet.length);
      return opened;
    },
  };
}

/** The UDP targets, in report order. */
export const UDP_TARGETS: readonly FuzzTarget[] = [
  udpAeadTarget("udp-aead", "aes-128-gcm", false),
  udpAeadTarget("udp-aead-plaintext", "chacha20-ietf-poly1305", true),
  udp2022Target("udp2022", "2022-blake3-aes-128-gcm"),
  udp2022Target("udp2022-multiuser", "2022-blake3-aes-256-gcm", [
    { name: "alice", password: psk(32, 60) },
    { name: "bob", password: psk(32, 90) },
  ]),
  udp2022Target("udp2022-chacha", "2022-blake3-chacha20-poly1305"),
  body2022Target("udp2022-body", "2022-blake3-aes-128-gcm"),
];
