/**
 * SOCKS5 method selection and the RFC 1929 username/password sub-negotiation, which runs after
 * the server selected method `0x02`. Its version byte is `0x01`, not `0x05`.
 *
 * ```
 * request  +-----+------+----------+------+----------+     reply  +-----+--------+
 *          | VER | ULEN | UNAME    | PLEN | PASSWD   |            | VER | STATUS |
 *          | 01  | 1    | 0..255   | 1    | 0..255   |            | 01  | 00 ok  |
 *          +-----+------+----------+------+----------+            +-----+--------+
 * ```
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ProtocolError } from "./errors.ts";
import { METHOD_NO_AUTH, METHOD_NONE_ACCEPTABLE } from "./socks5.ts";

export const METHOD_USER_PASS = 0x02;
export const USER_PASS_VERSION = 0x01;
export const USER_PASS_SUCCESS = 0x00;
/** Any non-zero STATUS is a failure; `0xFF` is what ss-rust sends. */
export const USER_PASS_FAILURE = 0xff;

/**
 * Picks the method to answer a greeting with. With users configured only `0x02` will do, so a
 * client cannot skip authentication by offering `0x00`. Without users we take `0x00` wherever
 * the client lists it (ss-rust takes the first of the client's list and then fails a client
 * that listed `0x02` first against an empty user table). `0xFF` when nothing fits.
 */
export function chooseMethod(offered: Uint8Array, usersConfigured: boolean): number {
  const wanted = usersConfigured ? METHOD_USER_PASS : METHOD_NO_AUTH;
  return offered.includes(wanted) ? wanted : METHOD_NONE_ACCEPTABLE;
}

export interface UserPassRequest {
  readonly user: string;
  readonly password: string;
  readonly length: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses the sub-negotiation request. Returns `undefined` while `bytes` is a strict prefix of
 * one. Throws `ProtocolError` with `ERR_CLIENT_PROTOCOL` for another version, `ERR_AUTH` for a
 * name or password that is not UTF-8 (our users come from a UTF-8 config file, so such bytes
 * could never match); the caller answers
 * `encodeUserPassReply(false)` and closes either way. Empty fields are accepted although
 * RFC 1929 says 1..255: they simply fail to match unless configured.
 */
export function parseUserPassRequest(bytes: Uint8Array): UserPassRequest | undefined {
  if (bytes.length < 1) return undefined;
  if (bytes[0] !== USER_PASS_VERSION) {
    throw new ProtocolError(
      "ERR_CLIENT_PROTOCOL",
      `Unsupported username/password version ${bytes[0]}: expected 1`,
    );
  }
  if (bytes.length < 2) return undefined;
  const userEnd = 2 + bytes[1]!;
  if (bytes.length < userEnd + 1) return undefined;
  const passwordEnd = userEnd + 1 + bytes[userEnd]!;
  if (bytes.length < passwordEnd) return undefined;
  return {
    user: decodeField(bytes.subarray(2, userEnd), "username"),
    password: decodeField(bytes.subarray(userEnd + 1, passwordEnd), "password"),
    length: passwordEnd,
  };
}

function decodeField(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch (error) {
    throw new ProtocolError("ERR_AUTH", `Invalid SOCKS5 ${what}: not UTF-8`, {
      cause: error,
    });
  }
}

/** The two-byte reply: `01 00` on success, `01 FF` on failure (then close). */
export function encodeUserPassReply(ok: boolean): Uint8Array {
  return Uint8Array.of(USER_PASS_VERSION, ok ? USER_PASS_SUCCESS : USER_PASS_FAILURE);
}

/**
 * Whether `user` exists in `users` with exactly `password`. The passwords are compared as
 * SHA-256 digests with `timingSafeEqual`, so the time taken reveals neither a common prefix nor
 * the length; an unknown user still costs one comparison (against a digest nobody can match).
 * User names are not secret and are looked up directly.
 */
export function credentialsMatch(
  users: ReadonlyMap<string, string>,
  user: string,
  password: string,
): boolean {
  const expected = users.get(user);
  const given = digest(password);
  const wanted = expected === undefined ? UNMATCHABLE : digest(expected);
  return timingSafeEqual(given, wanted) && expected !== undefined;
}

/** 32 bytes that no SHA-256 output is known to equal. */
const UNMATCHABLE = new Uint8Array(32).fill(0xff);

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text, "utf8").digest();
}
