/**
 * The method table: every cipher name ssdeno accepts and the sizes its wire format uses.
 * @module
 */

/**
 * How a method turns a password into keys and frames its data. `stream` is the legacy,
 * unauthenticated stream-cipher protocol (NOTES §5): insecure, offered only for old peers.
 */
export type MethodFamily = "aead" | "aead2022" | "stream" | "none";

/** The underlying AEAD primitive a method uses. */
export type AeadAlgorithm =
  | "aes-128-gcm"
  | "aes-192-gcm"
  | "aes-256-gcm"
  | "chacha20-poly1305"
  | "xchacha20-poly1305";

/** The legacy stream-cipher methods (each is also the name of its cipher, see stream_cipher.ts). */
export type StreamMethodName =
  | "table"
  | "rc4-md5"
  | "aes-128-cfb"
  | "aes-192-cfb"
  | "aes-256-cfb"
  | "aes-128-ctr"
  | "aes-192-ctr"
  | "aes-256-ctr"
  | "camellia-128-cfb"
  | "camellia-192-cfb"
  | "camellia-256-cfb"
  | "bf-cfb"
  | "chacha20"
  | "chacha20-ietf"
  | "salsa20";

/** Sizes and primitives of one method. */
export interface MethodInfo {
  readonly name: string;
  readonly family: MethodFamily;
  /**
   * Key length in bytes (also the salt length for AEAD methods); 0 for `none` and for `table`,
   * which uses the raw password.
   */
  readonly keySize: number;
  /**
   * What is sent in clear at the start of each TCP direction and of each UDP packet: the salt of
   * an AEAD method, the IV of a stream method (0 for `table` and `none`).
   */
  readonly saltSize: number;
  readonly tagSize: number;
  /** Primitive used for sealing (AEAD families only). */
  readonly algorithm?: AeadAlgorithm;
  /** The cipher of a `stream` method (crypto/stream_cipher.ts). */
  readonly stream?: StreamMethodName;
}

const AEAD_METHODS: readonly MethodInfo[] = [
  {
    name: "aes-128-gcm",
    family: "aead",
    keySize: 16,
    saltSize: 16,
    tagSize: 16,
    algorithm: "aes-128-gcm",
  },
  {
    name: "aes-256-gcm",
    family: "aead",
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    algorithm: "aes-256-gcm",
  },
  {
    name: "chacha20-ietf-poly1305",
    family: "aead",
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    algorithm: "chacha20-poly1305",
  },
];

/**
 * AEAD-2017 methods beyond the org's table (NOTES §3.1): in the whitepaper, ss-py and libev
 * (aes-192-gcm), and in libev, ss-py (libsodium) and ss-rust "aead-extra" (XChaCha20, whose
 * nonce counter is 24 bytes instead of 12). Same framing as the three above.
 */
const AEAD_EXTRA_METHODS: readonly MethodInfo[] = [
  {
    name: "aes-192-gcm",
    family: "aead",
    keySize: 24,
    saltSize: 24,
    tagSize: 16,
    algorithm: "aes-192-gcm",
  },
  {
    name: "xchacha20-ietf-poly1305",
    family: "aead",
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    algorithm: "xchacha20-poly1305",
  },
];

/**
 * The legacy stream ciphers (NOTES §3.3, §5): `[name, key length, IV length]`. Insecure (no
 * integrity, no replay protection); config/ offers them only behind an explicit opt-in.
 */
const STREAM_SIZES: readonly (readonly [StreamMethodName, number, number])[] = [
  ["table", 0, 0],
  ["rc4-md5", 16, 16],
  ["aes-128-cfb", 16, 16],
  ["aes-192-cfb", 24, 16],
  ["aes-256-cfb", 32, 16],
  ["aes-128-ctr", 16, 16],
  ["aes-192-ctr", 24, 16],
  ["aes-256-ctr", 32, 16],
  ["camellia-128-cfb", 16, 16],
  ["camellia-192-cfb", 24, 16],
  ["camellia-256-cfb", 32, 16],
  ["bf-cfb", 16, 8],
  ["chacha20", 32, 8],
  ["chacha20-ietf", 32, 12],
  ["salsa20", 32, 8],
];

const STREAM_METHODS: readonly MethodInfo[] = STREAM_SIZES.map(([name, keySize, ivSize]) => ({
  name,
  family: "stream",
  keySize,
  saltSize: ivSize,
  tagSize: 0,
  stream: name,
}));

/**
 * The 2022 edition (SIP022). TCP uses `algorithm` with a BLAKE3 session subkey; UDP hides a
 * separate header with AES (the AES methods) or uses XChaCha20-Poly1305 (the ChaCha method).
 */
const AEAD_2022_METHODS: readonly MethodInfo[] = [
  {
    name: "2022-blake3-aes-128-gcm",
    family: "aead2022",
    keySize: 16,
    saltSize: 16,
    tagSize: 16,
    algorithm: "aes-128-gcm",
  },
  {
    name: "2022-blake3-aes-256-gcm",
    family: "aead2022",
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    algorithm: "aes-256-gcm",
  },
  {
    name: "2022-blake3-chacha20-poly1305",
    family: "aead2022",
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    algorithm: "chacha20-poly1305",
  },
];

/** `none` (alias `plain`) sends the address header and data in clear: for testing only. */
const NONE_METHOD: MethodInfo = {
  name: "none",
  family: "none",
  keySize: 0,
  saltSize: 0,
  tagSize: 0,
};

const METHODS = new Map<string, MethodInfo>([
  ...AEAD_METHODS.map((m) => [m.name, m] as const),
  ...AEAD_2022_METHODS.map((m) => [m.name, m] as const),
  ...AEAD_EXTRA_METHODS.map((m) => [m.name, m] as const),
  ["none", NONE_METHOD],
  ["plain", NONE_METHOD],
  ...STREAM_METHODS.map((m) => [m.name, m] as const),
]);

/** All accepted method names, in the order they are listed to users. */
export const METHOD_NAMES: readonly string[] = [...METHODS.keys()];

/** Looks a method up by name; `undefined` when the name is unknown. */
export function findMethod(name: string): MethodInfo | undefined {
  return METHODS.get(name.toLowerCase());
}
