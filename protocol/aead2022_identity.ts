/**
 * SIP023 extensible identity headers (EIH): several users on one port, each with its own PSK,
 * for the AES 2022 methods. The client's key chain is `K0 = iPSK1, ..., Kn-1 = iPSKn, Kn = uPSK`
 * and it sends one 16-byte EIH per iPSK, naming the next key by its identity hash.
 *
 * ```
 * TCP request:   | salt | EIH 0 | ... | EIH n-1 | AEAD fixed header | ...
 *   EIH i = AES-encrypt(key   = derive_key("shadowsocks 2022 identity subkey", Ki || salt)[0..keySize],
 *                       block = blake3(Ki+1)[0..16])
 *
 * UDP request:   | AES(K0, separate header) | EIH 0 | ... | EIH n-1 | AEAD body |
 *   EIH i = AES-encrypt(key   = Ki,
 *                       block = blake3(Ki+1)[0..16] XOR separate header (plaintext))
 * ```
 *
 * A server (not a relay) reads exactly one EIH with its own iPSK, recovers the identity hash and
 * looks the user up; an unknown hash fails like a bad tag. UDP responses carry no EIH.
 * @module
 */
import { aesBlockCipherFor, aesBlockOnce } from "../crypto/aes_block.ts";
import {
  deriveIdentitySubkey,
  IDENTITY_HASH_SIZE,
  InvalidPskError,
  parsePasswordChain,
  parsePsk,
  pskIdentityHash,
  supportsIdentityHeaders,
} from "../crypto/kdf2022.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { ProtocolError } from "./errors.ts";

/** Bytes of one identity header. */
export const EIH_SIZE = 16;

/** One user of a multi-user server. */
export interface User2022 {
  readonly name: string;
  /** The user's PSK (uPSK): the key of that user's sessions. */
  readonly psk: Uint8Array;
}

/** Identity hash (as lower-case hex) → user. Build it with {@linkcode createUserTable}. */
export type UserTable = ReadonlyMap<string, User2022>;

/** What a 2022 client needs: the method and its key chain. */
export interface ClientKeys2022 {
  readonly method: MethodInfo;
  /** The session key. */
  readonly userPsk: Uint8Array;
  /** Identity PSKs, first server's first; empty for a single-user server. */
  readonly identityPsks: readonly Uint8Array[];
}

/** What a 2022 server needs. */
export interface ServerKeys2022 {
  readonly method: MethodInfo;
  /** The server PSK: the session key without users, the identity key (iPSK) with them. */
  readonly psk: Uint8Array;
  /** Present for a multi-user server: then every request must carry exactly one EIH. */
  readonly users?: UserTable;
}

/** Parses a client password (`uPSK` or `iPSK1:...:uPSK`) for a 2022 method. */
export function clientKeys2022(method: MethodInfo, password: string): ClientKeys2022 {
  checkFamily(method);
  const chain = parsePasswordChain(method, password);
  return { method, userPsk: chain.userPsk, identityPsks: chain.identityPsks };
}

/**
 * Parses a server's PSK and, for multi-user, its users' PSKs (each one base64 key of the
 * method's size). Throws `InvalidPskError` naming the user whose key is bad, and `RangeError`
 * for users on a ChaCha method, two users sharing a key, or a duplicate name.
 */
export function serverKeys2022(
  method: MethodInfo,
  password: string,
  users?: readonly { readonly name: string; readonly password: string }[],
): ServerKeys2022 {
  checkFamily(method);
  const psk = parsePsk(method, password);
  if (users === undefined) return { method, psk };
  if (!supportsIdentityHeaders(method)) {
    throw new InvalidPskError(
      method.name,
      `Invalid users for ${method.name}: multiple users need ` +
        `2022-blake3-aes-128-gcm or 2022-blake3-aes-256-gcm`,
    );
  }
  const parsed = users.map((user) => {
    try {
      return { name: user.name, psk: parsePsk(method, user.password) };
    } catch (error) {
      if (!(error instanceof InvalidPskError)) throw error;
      throw new InvalidPskError(
        method.name,
        error.message.replace("Invalid key ", `Invalid key of user "${user.name}" `),
      );
    }
  });
  return { method, psk, users: createUserTable(parsed) };
}

/** Builds the identity-hash → user table; two users with one PSK or one name are an error. */
export function createUserTable(users: readonly User2022[]): UserTable {
  const table = new Map<string, User2022>();
  const names = new Set<string>();
  for (const user of users) {
    if (names.has(user.name)) throw new RangeError(`Duplicate user name "${user.name}"`);
    names.add(user.name);
    const key = toHex(pskIdentityHash(user.psk));
    const other = table.get(key);
    if (other !== undefined) {
      throw new RangeError(`Users "${other.name}" and "${user.name}" have the same key`);
    }
    table.set(key, user);
  }
  return table;
}

/** Looks up the user an identity hash names; `undefined` when unknown. */
export function lookupUser(table: UserTable, identityHash: Uint8Array): User2022 | undefined {
  return table.get(toHex(identityHash));
}

/** Number of EIH bytes a client with these keys sends in each request. */
export function identityHeadersLength(keys: ClientKeys2022): number {
  return keys.identityPsks.length * EIH_SIZE;
}

/** The client's TCP EIHs for one request salt, concatenated (empty without iPSKs). */
export function sealTcpIdentityHeaders(
  keys: ClientKeys2022,
  salt: Uint8Array,
  keySize: number = keys.method.keySize,
): Uint8Array {
  const chain = [...keys.identityPsks, keys.userPsk];
  const out = new Uint8Array(identityHeadersLength(keys));
  for (let i = 0; i + 1 < chain.length; i++) {
    const subkey = deriveIdentitySubkey(chain[i]!, salt, keySize);
    out.set(aesBlockOnce(subkey, identityHashOf(chain[i + 1]!), "encrypt"), i * EIH_SIZE);
  }
  return out;
}

/** Server side: the identity hash inside one TCP EIH, using the server's iPSK. */
export function openTcpIdentityHeader(
  identityPsk: Uint8Array,
  salt: Uint8Array,
  eih: Uint8Array,
  keySize: number,
): Uint8Array {
  checkEih(eih);
  return aesBlockOnce(deriveIdentitySubkey(identityPsk, salt, keySize), eih, "decrypt");
}

/** The client's UDP EIHs for one packet, given the plaintext separate header (16 bytes). */
export function sealUdpIdentityHeaders(
  keys: ClientKeys2022,
  separateHeader: Uint8Array,
): Uint8Array {
  const chain = [...keys.identityPsks, keys.userPsk];
  const out = new Uint8Array(identityHeadersLength(keys));
  for (let i = 0; i + 1 < chain.length; i++) {
    const block = xor(identityHashOf(chain[i + 1]!), separateHeader);
    out.set(aesBlockCipherFor(chain[i]!).encrypt(block), i * EIH_SIZE);
  }
  return out;
}

/** Server side: the identity hash inside one UDP EIH, using the server's iPSK. */
export function openUdpIdentityHeader(
  identityPsk: Uint8Array,
  eih: Uint8Array,
  separateHeader: Uint8Array,
): Uint8Array {
  checkEih(eih);
  return xor(aesBlockCipherFor(identityPsk).decrypt(eih), separateHeader);
}

/**
 * Server side: the user an EIH names, or a `ProtocolError("ERR_CIPHER")` (handled like a bad
 * tag, so a prober learns nothing from it).
 */
export function requireUser(table: UserTable, identityHash: Uint8Array): User2022 {
  const user = lookupUser(table, identityHash);
  if (user === undefined) {
    throw new ProtocolError("ERR_CIPHER", "Unknown user: identity header names no configured key");
  }
  return user;
}

const identityHashes = new WeakMap<Uint8Array, Uint8Array>();

/** `pskIdentityHash(psk)`, computed once per key object (clients send one per packet). */
function identityHashOf(psk: Uint8Array): Uint8Array {
  let hash = identityHashes.get(psk);
  if (hash === undefined) {
    hash = pskIdentityHash(psk);
    identityHashes.set(psk, hash);
  }
  return hash;
}

function checkFamily(method: MethodInfo): void {
  if (method.family !== "aead2022") {
    throw new RangeError(`Method ${method.name} is not a 2022 method`);
  }
}

function checkEih(eih: Uint8Array): void {
  if (eih.length !== EIH_SIZE) {
    throw new RangeError(`Invalid identity header: expected ${EIH_SIZE} bytes, got ${eih.length}`);
  }
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(IDENTITY_HASH_SIZE);
  for (let i = 0; i < IDENTITY_HASH_SIZE; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function toHex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}
