/**
 * Whether the crypto backend in use can run a method at all, asked once when a service starts
 * (so a server refuses to start rather than failing every connection): `bf-cfb` and `rc4-md5`
 * need OpenSSL's legacy provider, the CFB ciphers need OpenSSL, `aes-192-gcm` needs OpenSSL.
 * @module
 */
import { aeadUnavailableReason, CipherUnavailableError } from "./backend.ts";
import type { MethodInfo } from "./methods.ts";
import { streamCipherUnavailableReason } from "./stream_cipher.ts";

export { CipherUnavailableError };

/** Why `method` cannot run with the backend in use; undefined when it can. */
export function methodUnavailableReason(method: MethodInfo): string | undefined {
  if (method.stream !== undefined) return streamCipherUnavailableReason(method.stream);
  if (method.algorithm !== undefined) return aeadUnavailableReason(method.algorithm);
  return undefined;
}

/** Throws `CipherUnavailableError` naming the method and the reason when it cannot run. */
export function assertMethodAvailable(method: MethodInfo): void {
  const reason = methodUnavailableReason(method);
  if (reason !== undefined) {
    throw new CipherUnavailableError(`Method "${method.name}" is unavailable: ${reason}`);
  }
}
