/**
 * The method table: every cipher name ssdeno accepts and the sizes its wire format uses.
 * @module
 */

/** How a method turns a password into keys and frames its data. */
export type MethodFamily = "aead" | "aead2022" | "none";

/** The underlying AEAD primitive a method uses. */
export type AeadAlgorithm = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

/** Sizes and primitives of one method. */
export interface MethodInfo {
  readonly name: string;
  readonly family: MethodFamily;
  /** Key length in bytes (also the salt length for AEAD methods). */
  readonly keySize: number;
  readonly saltSize: number;
  readonly tagSize: number;
  /** Primitive used for sealing; absent for `none`. */
  readonly algorithm?: AeadAlgorithm;
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
  ["none", NONE_METHOD],
  ["plain", NONE_METHOD],
]);

/** All accepted method names, in the order they are listed to users. */
export const METHOD_NAMES: readonly string[] = [...METHODS.keys()];

/** Looks a method up by name; `undefined` when the name is unknown. */
export function findMethod(name: string): MethodInfo | undefined {
  return METHODS.get(name.toLowerCase());
}
