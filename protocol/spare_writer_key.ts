/**
 * A writer's first key, made ahead of need: AEAD-2017 and the 2022 edition alike. Starting our
 * direction of a session costs a fresh salt, the session subkey (HKDF-SHA1, or BLAKE3 for 2022)
 * and keying a native AEAD context: about 20 µs on a connection's critical path in a running
 * server or tunnel, where every step runs with cold caches (CPU profile and in-place timings,
 * bench/results.md, "Per-connection cost"). None of it depends on the session, only on the key,
 * so a session whose first flight is out makes it for the next session of its key
 * (relay/shadowsocks_stream.ts calls `StreamFraming.prepareNext`): the work then overlaps the
 * peer's turn instead of delaying the next connection. Measured: 3–5 % off the time of 2000
 * sequential AEAD-2017 connections (bench/results.md, "Fifth pass", for 2022).
 *
 * One spare per key (a listener's master key or PSK, a user's, an outbound server's), used once:
 * taking it removes it, so no two sessions ever share a salt. The salt comes from the same CSPRNG
 * as before; an AEAD-2017 server records it as its own (replay store) when it is used, not when
 * it is made.
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { sessionSubkeyView } from "../crypto/kdf.ts";
import { sessionSubkey2022View } from "../crypto/kdf2022.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { fillPrefixedSalt } from "./outline_prefix.ts";

/** A salt and the cipher keyed from it, for one writer. */
export interface WriterKey {
  readonly salt: Uint8Array;
  readonly cipher: AeadCipher;
}

interface Spare extends WriterKey {
  readonly method: MethodInfo;
  readonly prefix: Uint8Array | undefined;
}

/** Keyed by the key's array: a reload's new key starts afresh, the old one is dropped. */
const spares = new WeakMap<Uint8Array, Spare>();
/**
 * A new salt (with the client's prefix, if any) and a cipher keyed from it with `masterKey`:
 * the AEAD-2017 master key, or the 2022 PSK of the session (a user's, with SIP023).
 */
function makeWriterKey(
  method: MethodInfo,
  masterKey: Uint8Array,
  prefix: Uint8Array | undefined,
): WriterKey {
  const salt = fillPrefixedSalt(new Uint8Array(method.saltSize), prefix);
  const subkey = method.family === "aead2022"
    ? sessionSubkey2022View(masterKey, salt, method.keySize)
    : sessionSubkeyView(masterKey, salt);
  return { salt, cipher: new AeadCipher(method.algorithm!, subkey) };
}

/** The writer key for a new session: the spare made for `masterKey` if it matches, else a new one. */
export function takeWriterKey(
  method: MethodInfo,
  masterKey: Uint8Array,
  prefix: Uint8Array | undefined,
): WriterKey {
  const spare = spareFor(method, masterKey, prefix);
  if (spare === undefined) return makeWriterKey(method, masterKey, prefix);
  spares.delete(masterKey);
  return spare;
}

/**
 * Makes the next session's key for `masterKey` now, unless one for the same method and prefix
 * is waiting. Never throws: a spare is only a head start.
 */
export function prepareWriterKey(
  method: MethodInfo,
  masterKey: Uint8Array,
  prefix: Uint8Array | undefined,
): void {
  if (spareFor(method, masterKey, prefix) !== undefined) return;
  try {
    const key = makeWriterKey(method, masterKey, prefix);
    // Keyed now rather than at the first seal: in place, the part that costs most.
    key.cipher.prepareSeal();
    spares.set(masterKey, { ...key, method, prefix });
  } catch {
    // The session made its own key with the same arguments; nothing to gain from failing here.
  }
}

/** The spare of `masterKey` when it was made for this method and prefix. */
function spareFor(
  method: MethodInfo,
  masterKey: Uint8Array,
  prefix: Uint8Array | undefined,
): Spare | undefined {
  const spare = spares.get(masterKey);
  return spare?.method === method && spare.prefix === prefix ? spare : undefined;
}

/** Whether a spare is ready for `masterKey` (for tests). */
export function hasSpareWriterKey(masterKey: Uint8Array): boolean {
  return spares.has(masterKey);
}
