/**
 * Random passwords for `ssdeno genkey` and the zero-config first run.
 * @module
 */

/**
 * `byteLength` random bytes, standard base64. 32 bytes give an AEAD-2017 password with the full
 * strength of a 256-bit key, and are also the exact PSK size of the 256-bit 2022 methods.
 */
export function generatePassword(byteLength = 32): string {
  const bytes = crypto.getRandomValues(new Uint8Array(byteLength));
  return btoa(String.fromCharCode(...bytes));
}
