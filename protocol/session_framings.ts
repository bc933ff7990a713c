/**
 * Keys parsed once per listener, framings made once per connection. A service calls
 * `serverFramings` or `clientFramings` at startup, so a bad key fails the start (2022 keys
 * throw `InvalidPskError`, which the config layer reports), and then asks for one
 * {@linkcode StreamFraming} per session without knowing which edition the method belongs to.
 *
 * The server's replay state lives here too, one per listener: the two-generation salt filter of
 * AEAD-2017 (protocol/replay_filter.ts, which also keeps the IVs of the legacy stream ciphers)
 * or the exact 61 s salt pool of the 2022 edition (protocol/salt_pool.ts).
 *
 * Both calls also check that the crypto backend can run the method at all
 * (`CipherUnavailableError`, e.g. `bf-cfb` without OpenSSL's legacy provider).
 * @module
 */
import { InvalidPskError } from "../crypto/kdf2022.ts";
import { deriveMasterKey, evpBytesToKey } from "../crypto/kdf.ts";
import { assertMethodAvailable } from "../crypto/method_support.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import type { Address } from "./address.ts";
import {
  aeadClientFraming,
  aeadMultiUserServerFraming,
  aeadServerFraming,
  KeyHints,
} from "./aead_framing.ts";
import { clientFraming2022, serverFraming2022 } from "./aead2022_framing.ts";
import { clientKeys2022, serverKeys2022 } from "./aead2022_identity.ts";
import { ReplayFilter, type ReplayStore } from "./replay_filter.ts";
import { SaltPool, type SaltStore } from "./salt_pool.ts";
import type { StreamFraming } from "./stream_framing.ts";
import { streamClientFraming, streamServerFraming } from "./stream_framing_legacy.ts";

/**
 * Most users one AEAD-2017 port takes. A connection from a new client (or a probe) may try every
 * key, about 14 µs each (HKDF-SHA1, a cipher, one tag check; `deno task bench`, "multi-user key
 * search"): 1.4 ms of CPU with 100 users, 16 ms with 1000, which would let a flood of junk
 * connections buy a core's time cheaply. For more users, the 2022 edition finds a user in one
 * step (SIP023 identity headers).
 */
export const MAX_AEAD_USERS = 100;

/** One user of a multi-user 2022 server: a name for logs and stats, and a base64 uPSK. */
export interface UserKey {
  readonly name: string;
  readonly password: string;
}

/** Options of {@linkcode serverFramings}. */
export interface ServerFramingsOptions {
  /** SIP023 users (AES 2022 methods only); `password` is then the server's identity PSK. */
  users?: readonly UserKey[] | undefined;
  /** The 2022 salt pool. Default: a new one (100 000 salts). */
  saltPool?: SaltStore;
  /** The AEAD-2017 (and stream-cipher IV) replay filter. Default: a new one (2 × 20 000 salts). */
  replayFilter?: ReplayStore;
}

/** A server listener's keys and replay state. */
export interface ServerFramings {
  readonly method: MethodInfo;
  /** Names of the configured users, in configuration order; empty without users. */
  readonly userNames: readonly string[];
  /** The framing of one accepted connection from `client` (its IP: multi-user key hints). */
  session(client?: string): StreamFraming;
}

/**
 * Parses the server's password (and users) for `method`. Throws `InvalidPskError` for a bad
 * 2022 key or for users on a method without identity headers, `RangeError` for two users with
 * one name or one key, `CipherUnavailableError` for a method the crypto backend cannot run.
 */
export function serverFramings(
  method: MethodInfo,
  password: string,
  options: ServerFramingsOptions = {},
): ServerFramings {
  assertMethodAvailable(method);
  const { users } = options;
  if (method.family === "aead2022") {
    const keys = serverKeys2022(method, password, users);
    const saltPool = options.saltPool ?? new SaltPool();
    return {
      method,
      userNames: users?.map((user) => user.name) ?? [],
      session: () => serverFraming2022(keys, { saltPool }),
    };
  }
  const replayFilter = options.replayFilter ?? new ReplayFilter();
  if (users !== undefined) {
    if (method.family !== "aead") {
      throw new InvalidPskError(
        method.name,
        `Invalid users for ${method.name}: multiple users need an AEAD method`,
      );
    }
    if (users.length === 0 || users.length > MAX_AEAD_USERS) {
      throw new RangeError(
        `Invalid users: an AEAD-2017 port takes 1 to ${MAX_AEAD_USERS} users (each connection ` +
          `tries their keys in turn)`,
      );
    }
    const keys = users.map((user) => ({
      name: user.name,
      masterKey: evpBytesToKey(user.password, method.keySize),
    }));
    const hints = new KeyHints();
    return {
      method,
      userNames: users.map((user) => user.name),
      session: (client) =>
        aeadMultiUserServerFraming(method, keys, {
          replayFilter,
          hints,
          ...(client === undefined ? {} : { client }),
        }),
    };
  }
  const masterKey = deriveMasterKey(method, password);
  if (method.family === "stream") {
    return {
      method,
      userNames: [],
      session: () => streamServerFraming(method, masterKey, { replayFilter }),
    };
  }
  return {
    method,
    userNames: [],
    session: () => aeadServerFraming(method, masterKey, { replayFilter }),
  };
}

/** Options of one client session's framing. */
export interface ClientSessionOptions {
  /** 2022 only: the server's clock minus ours once its response header opens (see there). */
  onServerSkew?: (skew: number) => void;
}

/** A client's keys for one server. */
export interface ClientFramings {
  readonly method: MethodInfo;
  /** The framing of one connection to the server, asking it for `target`. */
  session(target: Address, options?: ClientSessionOptions): StreamFraming;
}

/**
 * Parses a client's password for `method`: for 2022 a base64 PSK, or `iPSK:...:uPSK` for a
 * multi-user server (AES methods). Throws `InvalidPskError` for a bad 2022 key and
 * `CipherUnavailableError` for a method the crypto backend cannot run. With a stream method,
 * `saltPrefix` starts the IV.
 */
export function clientFramings(
  method: MethodInfo,
  password: string,
  saltPrefix?: Uint8Array,
): ClientFramings {
  assertMethodAvailable(method);
  if (method.family === "aead2022") {
    const keys = clientKeys2022(method, password);
    return {
      method,
      session: (target, options = {}) =>
        clientFraming2022(keys, target, saltPrefix ? { ...options, saltPrefix } : options),
    };
  }
  const masterKey = deriveMasterKey(method, password);
  if (method.family === "stream") {
    return {
      method,
      session: (target) => streamClientFraming(method, masterKey, target, saltPrefix),
    };
  }
  return {
    method,
    session: (target) => aeadClientFraming(method, masterKey, target, saltPrefix),
  };
}
