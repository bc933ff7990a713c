/**
 * Outline's connection prefix: the client fixes the first bytes of its salt so that its first
 * packet looks like another protocol to a censor (see `fet.ts`); the rest of the salt stays
 * random. The server needs no change, since the salt is opaque to it.
 *
 * ```
 * salt = [ prefix (k bytes) | random (salt length - k bytes) ]
 * ```
 *
 * Written as text in two places, both with one character per byte (U+0000..U+00FF): the
 * `prefix` query value of a `ss://` URI (form-decoded, so `+` is a space and `%C3%9C` is the
 * byte 0xDC) and the `prefix` string of a JSON or YAML config.
 * @module
 */

import { ConfigError } from "./errors.ts";

/**
 * Random salt bytes a prefix must leave: a salt repeats after about 2^(8n/2) connections, and
 * a repeated salt lets an attacker decrypt and recover the key. 12 bytes put that at ~2^48.
 */
export const MIN_RANDOM_SALT_BYTES = 12;

/** Outline's advice ("no longer than 16 bytes"), written for 32-byte salts. */
const ADVISED_MAX_PREFIX_BYTES = 16;

/**
 * Turns prefix text into bytes, one byte per code point. `where` names the source in the
 * error, e.g. `ss:// URI prefix`. A code point above U+00FF (including the U+FFFD that
 * invalid UTF-8 such as a raw `%DC` decodes to) is a `ConfigError`.
 */
export function prefixFromCodePoints(text: string, where: string): Uint8Array {
  const bytes: number[] = [];
  for (const char of text) {
    const codePoint = char.codePointAt(0)!;
    if (codePoint > 0xff) {
      const shown = codePoint.toString(16).toUpperCase().padStart(4, "0");
      throw new ConfigError(
        `Invalid ${where}: character out of range: U+${shown}; ` +
          "each character must be U+0000..U+00FF and stands for one byte",
      );
    }
    bytes.push(codePoint);
  }
  return Uint8Array.from(bytes);
}

/** The `prefix` query value Outline writes: `encodeURIComponent` of one character per byte. */
export function prefixToUriValue(bytes: Uint8Array): string {
  return encodeURIComponent(Array.from(bytes, (byte) => String.fromCharCode(byte)).join(""));
}

/**
 * Checks a prefix against the salt of the method it is used with. Throws `ConfigError` when
 * fewer than `MIN_RANDOM_SALT_BYTES` salt bytes would stay random; returns a warning when the
 * prefix is longer than Outline advises, else `undefined`. An empty prefix is always fine.
 */
export function checkPrefix(
  prefix: Uint8Array,
  saltLength: number,
  where: string,
): string | undefined {
  if (prefix.length === 0) return undefined;
  const max = Math.max(0, saltLength - MIN_RANDOM_SALT_BYTES);
  if (saltLength - prefix.length < MIN_RANDOM_SALT_BYTES) {
    throw new ConfigError(
      `Invalid ${where}: ${prefix.length} bytes is too long for a ${saltLength}-byte salt: ` +
        `expected at most ${max} bytes for this method, so that ${MIN_RANDOM_SALT_BYTES} salt ` +
        "bytes stay random; otherwise salts would repeat and a repeated salt exposes the key",
    );
  }
  if (prefix.length > ADVISED_MAX_PREFIX_BYTES) {
    return `${where}: ${prefix.length} bytes is longer than the ${ADVISED_MAX_PREFIX_BYTES} ` +
      `Outline advises; only ${saltLength - prefix.length} salt bytes stay random, ` +
      "which makes repeated salts more likely";
  }
  return undefined;
}

/** Fills `salt` with random bytes, then puts `prefix` (already checked to fit) in front. */
export function fillPrefixedSalt(salt: Uint8Array, prefix: Uint8Array | undefined): Uint8Array {
  crypto.getRandomValues(salt);
  if (prefix !== undefined) salt.set(prefix);
  return salt;
}
