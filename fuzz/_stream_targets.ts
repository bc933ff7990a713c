/**
 * Targets for a server opening a client's TCP first flight: the framing a listener makes per
 * connection, fed the bytes in arbitrary splits (fuzz/_drive.ts checks progress and `wanted`).
 *
 * Two kinds per edition. `*-flight` mutates real first flights (from `clientFramings` and
 * `sealRequest`), so it probes the salt, the tag checks, the replay and user look-ups and the
 * chunk length handling; nearly every mutation fails authentication there, as it should.
 * `*-plaintext` mutates the plaintext and seals it with the right key, so the address header,
 * 2022 fixed and variable headers and chunk boundaries are reached with hostile content.
 *
 * The 2022 targets build their framing with `serverFraming2022` rather than `serverFramings`
 * only to pin the clock (`now`): both make the same `RequestDecoder`, and a pinned clock keeps
 * the seeds' timestamps valid for a run of any length.
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { deriveSessionSubkey, evpBytesToKey } from "../crypto/kdf.ts";
import { findMethod, type MethodInfo } from "../crypto/methods.ts";
import { type Address, encodeAddress } from "../protocol/address.ts";
import { sealChunks } from "../protocol/aead_chunk.ts";
import { serverFraming2022 } from "../protocol/aead2022_framing.ts";
import {
  clientKeys2022,
  sealTcpIdentityHeaders,
  serverKeys2022,
} from "../protocol/aead2022_identity.ts";
import {
  createTcpCipher2022,
  encodeRequestFixedHeader,
  sealRequest,
} from "../protocol/aead2022_tcp.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { ReplayFilter } from "../protocol/replay_filter.ts";
import { SaltPool } from "../protocol/salt_pool.ts";
import { clientFramings, serverFramings, type UserKey } from "../protocol/session_framings.ts";
import { driveFraming } from "./_drive.ts";
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
import { hashBytes, Prng } from "./prng.ts";
import type { FuzzTarget } from "./target.ts";

const CLIENT_IP = "198.51.100.7";
const FLIGHT_MAX_LENGTH = 20_000;
/** A second write after the first flight: two chunks in AEAD-2017 (0x3FFF + 100 bytes). */
const LONG_PAYLOAD = counting(0x3fff + 100, 7);

function method(name: string): MethodInfo {
  const found = findMethod(name);
  if (found === undefined) throw new Error(`Unknown method "${name}"`);
  return found;
}

/** The first flights of a few sessions: each address, a payload, and one more write. */
function aeadFlights(info: MethodInfo, passwords: readonly string[]): Uint8Array[] {
  return ADDRESSES.map((address, i) => {
    const password = passwords[i % passwords.length]!;
    // A prefix as long as the salt makes the whole salt, so seeds are the same on every run.
    const framing = clientFramings(info, password, counting(info.saltSize, i)).session(address);
    const first = framing.seal(PAYLOADS[i % PAYLOADS.length]!);
    return i % 3 === 0 ? join(first, framing.seal(i === 0 ? LONG_PAYLOAD : PAYLOADS[1]!)) : first;
  });
}

function aeadFlightTarget(
  name: string,
  methodName: string,
  users?: readonly UserKey[],
): FuzzTarget {
  const info = method(methodName);
  const password = "fuzz-password";
  return {
    name,
    parser: `serverFramings(${methodName}${
      users ? `, ${users.length} users` : ""
    }).session().open()`,
    typed: [ProtocolError],
    seeds: () => aeadFlights(info, users ? users.map((user) => user.password) : [password]),
    maxLength: FLIGHT_MAX_LENGTH,
    run(input) {
      // One listener per input: a fresh replay filter, so a seed's salt is not a replay.
      const framings = serverFramings(info, password, {
        replayFilter: new ReplayFilter(16),
        ...(users ? { users } : {}),
      });
      return driveFraming(framings.session(CLIENT_IP), input);
    },
  };
}

/** `plain` split into AEAD-2017 chunks of sizes picked from its hash, empty chunks included. */
function sealAeadPlaintext(info: MethodInfo, masterKey: Uint8Array, plain: Uint8Array): Uint8Array {
  const rng = new Prng(hashBytes(plain));
  const salt = counting(info.saltSize, 99);
  const cipher = new AeadCipher(info.algorithm!, deriveSessionSubkey(masterKey, salt));
  const parts = [salt];
  const mode = rng.below(3);
  let at = 0;
  do {
    // Mode 2 sends an empty chunk now and then, which is valid on the wire.
    const size = mode === 0 ? 0x3fff : mode === 1 ? rng.between(1, 8) : rng.between(0, 300);
    const piece = plain.subarray(at, at + size);
    parts.push(cipher.seal(u16(piece.length)), cipher.seal(piece));
    at += piece.length;
  } while (at < plain.length);
  return join(...parts);
}

function aeadPlaintextTarget(name: string, methodName: string): FuzzTarget {
  const info = method(methodName);
  const password = "fuzz-password";
  const masterKey = evpBytesToKey(password, info.keySize);
  return {
    name,
    parser: `serverFramings(${methodName}).session().open() on sealed hostile plaintext`,
    typed: [ProtocolError],
    seeds: () =>
      ADDRESSES.flatMap((address, i) => [
        encodeAddress(address),
        join(encodeAddress(address), PAYLOADS[i % PAYLOADS.length]!),
      ]),
    dictionary: ["\x01", "\x03", "\x04", "\x00\x00", "\xff", ...UTF8_EDGES],
    maxLength: 2048,
    run(input) {
      const framings = serverFramings(info, password, { replayFilter: new ReplayFilter(16) });
      return driveFraming(framings.session(CLIENT_IP), sealAeadPlaintext(info, masterKey, input));
    },
  };
}

/** `none`: the address header and payload in clear, so every mutation reaches the parser. */
const noneFlight: FuzzTarget = {
  name: "none-flight",
  parser: "serverFramings(none).session().open()",
  typed: [ProtocolError],
  seeds: () => aeadFlights(method("none"), [""]),
  dictionary: ["\x01", "\x03", "\x04", "\x00\x00", "\xff", ...UTF8_EDGES],
  maxLength: 2048,
  run(input) {
    const framings = serverFramings(method("none"), "", { replayFilter: new ReplayFilter(16) });
    return driveFraming(framings.session(CLIENT_IP), input);
  },
};

/** A 2022 user: the client password is `iPSK:uPSK`, the server knows the uPSK. */
interface User2022Seed {
  readonly name: string;
  readonly password: string;
}

/** The variable header with zero padding (our encoder pads with random bytes). */
function variableHeader(address: Address, padding: number, payload: Uint8Array): Uint8Array {
  return join(encodeAddress(address), u16(padding), new Uint8Array(padding), payload);
}

/**
 * A 2022 request sealed from its plaintext parts: salt, EIHs as given, sealed fixed header,
 * sealed variable header, then the rest as chunks (of sizes picked from `rng`).
 */
function seal2022(
  info: MethodInfo,
  sessionPsk: Uint8Array,
  salt: Uint8Array,
  eih: Uint8Array,
  parts: { fixed: Uint8Array; variable: Uint8Array; rest: Uint8Array },
  rng: Prng,
): Uint8Array {
  const cipher = createTcpCipher2022(info, sessionPsk, salt);
  const out = [salt, eih, cipher.seal(parts.fixed), cipher.seal(parts.variable)];
  for (let at = 0; at < parts.rest.length;) {
    const size = rng.oneIn(2) ? 0xffff : rng.between(1, 64);
    out.push(sealChunks(cipher, parts.rest.subarray(at, at + size), 0xffff));
    at += size;
  }
  return join(...out);
}

function flights2022(info: MethodInfo, passwords: readonly string[]): Uint8Array[] {
  return ADDRESSES.map((address, i) => {
    const keys = clientKeys2022(info, passwords[i % passwords.length]!);
    const salt = counting(info.saltSize, i);
    const payload = PAYLOADS[i % PAYLOADS.length]!;
    if (payload.length > 0) {
      const request = sealRequest(keys, address, { payload, salt, now: fuzzNow, paddingLength: 0 });
      const more = i % 3 === 0
        ? sealChunks(request.cipher, LONG_PAYLOAD, 0xffff)
        : new Uint8Array(0);
      return join(request.bytes, more);
    }
    // No payload: the client pads. Sealed by hand, since our encoder's padding is random.
    const eih = sealTcpIdentityHeaders(keys, salt);
    const variable = variableHeader(address, 1 + (i * 97) % 900, new Uint8Array(0));
    const fixed = encodeRequestFixedHeader({ timestamp: FUZZ_NOW_S, length: variable.length });
    return seal2022(info, keys.userPsk, salt, eih, { fixed, variable, rest: payload }, new Prng(i));
  });
}

function flight2022Target(
  name: string,
  methodName: string,
  users?: readonly User2022Seed[],
): FuzzTarget {
  const info = method(methodName);
  const serverPsk = psk(info.keySize, 1);
  const keys = serverKeys2022(
    info,
    serverPsk,
    users?.map((user) => ({ name: user.name, password: user.password })),
  );
  const clientPasswords = users
    ? users.map((user) => `${serverPsk}:${user.password}`)
    : [serverPsk];
  return {
    name,
    parser: `serverFraming2022(${methodName}${users ? `, ${users.length} users` : ""}).open()`,
    typed: [ProtocolError],
    seeds: () => flights2022(info, clientPasswords),
    maxLength: FLIGHT_MAX_LENGTH,
    run(input) {
      const framing = serverFraming2022(keys, {
        saltPool: new SaltPool({ capacity: 16 }),
        now: fuzzNow,
      });
      return driveFraming(framing, input);
    },
  };
}

/**
 * Input: fixed header (11 bytes: type, timestamp, length) then the rest; the variable header is
 * the next `length` bytes of the rest and what follows goes as chunks. Mutating the length
 * field moves that boundary; mutating the timestamp tests the window.
 */
function plaintext2022Target(name: string, methodName: string): FuzzTarget {
  const info = method(methodName);
  const serverPsk = psk(info.keySize, 3);
  const keys = serverKeys2022(info, serverPsk);
  const sessionPsk = clientKeys2022(info, serverPsk).userPsk;
  const salt = counting(info.saltSize, 42);
  return {
    name,
    parser: `serverFraming2022(${methodName}).open() on sealed hostile headers`,
    typed: [ProtocolError],
    seeds: () =>
      ADDRESSES.map((address, i) => {
        const payload = PAYLOADS[i % PAYLOADS.length]!;
        const padding = payload.length === 0 ? 1 + i * 50 : i % 2;
        const variable = variableHeader(address, padding, payload);
        const fixed = encodeRequestFixedHeader({ timestamp: FUZZ_NOW_S, length: variable.length });
        return join(fixed, variable, i % 3 === 0 ? PAYLOADS[3]! : new Uint8Array(0));
      }),
    dictionary: ["\x00", "\x01", "\x03", "\x04", "\x03\x84", "\x03\x85", "\xff\xff", ...UTF8_EDGES],
    maxLength: 4096,
    run(input) {
      const fixed = input.subarray(0, 11);
      const length = fixed.length === 11 ? (fixed[9]! << 8) | fixed[10]! : 0;
      const rest = input.subarray(11);
      const wire = seal2022(info, sessionPsk, salt, new Uint8Array(0), {
        fixed,
        variable: rest.subarray(0, length),
        rest: rest.subarray(length),
      }, new Prng(hashBytes(input)));
      const framing = serverFraming2022(keys, {
        saltPool: new SaltPool({ capacity: 16 }),
        now: fuzzNow,
      });
      return driveFraming(framing, wire);
    },
  };
}

const USERS_2017: readonly UserKey[] = [
  { name: "alice", password: "alice-password" },
  { name: "bob", password: "bob-password" },
  { name: "carol", password: "carol-password" },
];

const USERS_2022: readonly User2022Seed[] = [
  { name: "alice", password: psk(32, 100) },
  { name: "bob", password: psk(32, 150) },
];

/** The TCP first-flight targets, in report order. */
export const STREAM_TARGETS: readonly FuzzTarget[] = [
  aeadFlightTarget("aead-flight", "chacha20-ietf-poly1305"),
  aeadFlightTarget("aead-multiuser-flight", "aes-128-gcm", USERS_2017),
  aeadPlaintextTarget("aead-plaintext", "aes-256-gcm"),
  noneFlight,
  flight2022Target("aead2022-flight", "2022-blake3-aes-128-gcm"),
  flight2022Target("aead2022-multiuser-flight", "2022-blake3-aes-256-gcm", USERS_2022),
  flight2022Target("aead2022-chacha-flight", "2022-blake3-chacha20-poly1305"),
  plaintext2022Target("aead2022-plaintext", "2022-blake3-aes-256-gcm"),
];
