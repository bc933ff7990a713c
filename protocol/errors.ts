/**
 * The one error class for protocol failures. Its `code` is the session status that the failure
 * ends the session with, so relay code can map any thrown error to exactly one status.
 * @module
 */

/**
 * Every status a session can end with, in the order tables and metrics list them. `OK` is the
 * only success. This array drives the type, the zero counts, the metrics labels and README.
 *
 * - `ERR_CIPHER`: a first flight that does not authenticate (wrong key, probe, unknown user)
 * - `ERR_REPLAY`: an authenticated first flight seen before, or out of its time window
 * - `ERR_READ_ADDRESS`: a malformed or unsupported target address
 * - `ERR_CLIENT_PROTOCOL`: an application spoke SOCKS/HTTP wrongly (or an unsupported command)
 * - `ERR_AUTH`: an application's credentials were missing or wrong
 * - `ERR_TARGET_FORBIDDEN`: the target policy refused the address (private, loopback, …)
 * - `ERR_BLOCKED`: an ACL block list refused the target
 * - `ERR_RESOLVE`: the target's name did not resolve
 * - `ERR_CONNECT`: the target (or every Shadowsocks server) refused or did not answer
 * - `ERR_RELAY_CLIENT` / `ERR_RELAY_TARGET`: the relay failed on that side
 * - `ERR_TIMEOUT`: the handshake deadline or the idle timeout passed
 * - `ERR_SHUTDOWN`: cut at the end of the shutdown grace period
 * - `ERR_INTERNAL`: a bug; the log line has the stack
 */
export const STATUSES = [
  "OK",
  "ERR_CIPHER",
  "ERR_REPLAY",
  "ERR_READ_ADDRESS",
  "ERR_CLIENT_PROTOCOL",
  "ERR_AUTH",
  "ERR_TARGET_FORBIDDEN",
  "ERR_BLOCKED",
  "ERR_RESOLVE",
  "ERR_CONNECT",
  "ERR_RELAY_CLIENT",
  "ERR_RELAY_TARGET",
  "ERR_TIMEOUT",
  "ERR_SHUTDOWN",
  "ERR_INTERNAL",
] as const;

export type SessionStatus = typeof STATUSES[number];

/** A zero counter for every status. */
export function createStatusCounts(): Record<SessionStatus, number> {
  return Object.fromEntries(STATUSES.map((status) => [status, 0])) as Record<
    SessionStatus,
    number
  >;
}

/** Statuses a protocol error may carry (everything but OK). */
export type ProtocolErrorCode = Exclude<SessionStatus, "OK">;

/** A failure caused by what a peer sent (or did not send). */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** The message of anything thrown, for log lines. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A mistake the user can fix in flags, config files or `ss://` URIs. `main.ts` prints only its
 * message (no stack trace) and exits with code 2, so the message must stand alone as one clear
 * sentence that names the flag or key and the accepted values. Defined here, at the bottom of
 * the layers, because URI decoding (protocol/) reports such mistakes too.
 */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}
