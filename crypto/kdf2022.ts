/**
 * Keys of the 2022 edition (SIP022, SIP023). The user supplies a pre-shared key (PSK) as
 * standard base64 whose decoded length is exactly the method's key size; no password stretching.
 *
 * ```
 * session subkey  = derive_key("shadowsocks 2022 session subkey",  PSK  || salt)        [0..keySize]
 *                   derive_key("shadowsocks 2022 session subkey",  PSK  || session ID)  (UDP, AES)
 * identity subkey = derive_key("shadowsocks 2022 identity subkey", iPSK || salt)        [0..keySize]
 * identity hash   = blake3::hash(PSK)[0..16]
 * password        = [iPSK1 ":" ... ":" iPSKn ":"] uPSK    (SIP023 chain, split on ":")
 * ```
 * @module
 */
import { blake3DeriveKeyInto, blake3DeriveKeyOf, blake3Hash } from "./blake3.ts";
import type { MethodInfo } from "./methods.ts";

export const SESSION_SUBKEY_CONTEXT = "shadowsocks 2022 session subkey";
export const IDENTITY_SUBKEY_CONTEXT = "shadowsocks 2022 identity subkey";
/** Length of a PSK identity hash (the plaintext of an identity header). */
export const IDENTITY_HASH_SIZE = 16;

/**
 * A PSK that is not base64 or has the wrong length, or a password chain the method cannot use.
 * A user error: the config layer reports the message as is. Messages never contain key text.
 */
export class InvalidPskError extends Error {
  /** The method the key was checked against. */
  readonly method: string;

  constructor(method: string, message: string) {
    super(message);
    this.name = "InvalidPskError";
    this.method = method;
  }
}

/** A client password split into its SIP023 chain. */
export interface PskChain {
  /** iPSK1..iPSKn, outermost (first server) first; empty without identity headers. */
  readonly identityPsks: readonly Uint8Array[];
  /** The user PSK: the key of the session itself. */
  readonly userPsk: Uint8Array;
}

/**
 * Decodes one base64 PSK for `method`; throws `InvalidPskError` unless it decodes to exactly
 * `method.keySize` bytes. Standard alphabet; `=` padding optional (as ss-rust accepts).
 */
export function parsePsk(method: MethodInfo, text: string): Uint8Array {
  return parsePskAt(method, text, "");
}

/** A fresh random PSK for `method`, as standard base64 with padding. */
export function generatePsk(method: MethodInfo): string {
  if (method.keySize < 1) {
    throw new RangeError(`Method ${method.name} takes no key`);
  }
  return encodeBase64(crypto.getRandomValues(new Uint8Array(method.keySize)));
}

/**
 * Splits `iPSK1:...:iPSKn:uPSK` (or a lone `uPSK`) and decodes every part. Identity PSKs need an
 * AES method (SIP023 is defined only for those); every part must have the method's key size.
 */
export function parsePasswordChain(method: MethodInfo, password: string): PskChain {
  const parts = password.split(":");
  const keys = parts.map((part, i) =>
    parsePskAt(method, part, parts.length > 1 ? ` (part ${i + 1} of ${parts.length})` : "")
  );
  if (keys.length > 1 && !supportsIdentityHeaders(method)) {
    throw new InvalidPskError(
      method.name,
      `Invalid password for ${method.name}: identity keys ("iPSK:uPSK") need ` +
        `2022-blake3-aes-128-gcm or 2022-blake3-aes-256-gcm`,
    );
  }
  return { identityPsks: keys.slice(0, -1), userPsk: keys[keys.length - 1]! };
}

/** True for the methods that carry SIP023 identity headers (the AES ones). */
export function supportsIdentityHeaders(method: MethodInfo): boolean {
  return method.family === "aead2022" && method.algorithm !== "chacha20-poly1305";
}

/**
 * The 2022 session subkey from `psk || salt` (TCP, one per direction) or `psk || sessionId`
 * (UDP with AES), `keySize` bytes long.
 */
export function deriveSessionSubkey2022(
  psk: Uint8Array,
  saltOrSessionId: Uint8Array,
  keySize: number = psk.length,
): Uint8Array {
  return blake3DeriveKeyOf(SESSION_SUBKEY_CONTEXT, psk, saltOrSessionId, keySize);
}

/** Where `sessionSubkey2022View` writes (2022 keys are 16 or 32 bytes), and its 16-byte view. */
const SUBKEY = new Uint8Array(32);
const SUBKEY_16 = SUBKEY.subarray(0, 16);

/**
 * `deriveSessionSubkey2022` in a buffer that the next call overwrites: for a caller that copies
 * the key at once, as every AEAD primitive does when keyed (crypto/backend.ts). Each TCP session
 * derives two subkeys per side, and a new array costs Deno a native backing store.
 */
export function sessionSubkey2022View(
  psk: Uint8Array,
  saltOrSessionId: Uint8Array,
  keySize: number = psk.length,
): Uint8Array {
  const target = keySize === 32 ? SUBKEY : keySize === 16 ? SUBKEY_16 : undefined;
  if (target === undefined) return deriveSessionSubkey2022(psk, saltOrSessionId, keySize);
  return blake3DeriveKeyInto(SESSION_SUBKEY_CONTEXT, psk, saltOrSessionId, target);
}

/** The SIP023 TCP identity subkey from `iPSK || salt`: 16 bytes for AES-128, 32 for AES-256. */
export function deriveIdentitySubkey(
  identityPsk: Uint8Array,
  salt: Uint8Array,
  keySize: number,
): Uint8Array {
  return blake3DeriveKeyOf(IDENTITY_SUBKEY_CONTEXT, identityPsk, salt, keySize);
}

/** `blake3::hash(psk)[0..16]`: names a PSK inside identity headers and user tables. */
export function pskIdentityHash(psk: Uint8Array): Uint8Array {
  return blake3Hash(psk, IDENTITY_HASH_SIZE);
}

const BASE64 = /^[A-Za-z0-9+/]*$/;

function parsePskAt(method: MethodInfo, text: string, where: string): Uint8Array {
  const bytes = decodeBase64(text);
  const got = bytes === undefined ? "text that is not base64" : `${bytes.length}`;
  if (bytes === undefined || bytes.length !== method.keySize) {
    throw new InvalidPskError(
      method.name,
      `Invalid key${where} for ${method.name}: expected ${method.keySize} bytes of base64, got ${got}`,
    );
  }
  return bytes;
}

/** Strict standard base64: optional padding, no whitespace, no stray bits in the last symbol. */
function decodeBase64(text: string): Uint8Array | undefined {
  const unpadded = text.replace(/={1,2}$/, "");
  if (!BASE64.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  if (text.length !== unpadded.length && text.length % 4 !== 0) return undefined;
  const binary = atob(unpadded + "=".repeat((4 - unpadded.length % 4) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  // Re-encoding catches non-canonical text such as "AB==" (low bits set in the last symbol).
  if (encodeBase64(bytes).replace(/=+$/, "") !== unpadded) return undefined;
  return bytes;
}

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
