/**
 * The one error class for protocol failures. Its `code` is the session status that the failure
 * ends the session with, so relay code can map any thrown error to exactly one status.
 * @module
 */

/** Every status a session can end with. `OK` is the only success. */
export type SessionStatus =
  | "OK"
  | "ERR_CIPHER"
  | "ERR_REPLAY"
  | "ERR_READ_ADDRESS"
  | "ERR_TARGET_FORBIDDEN"
  | "ERR_CONNECT"
  | "ERR_RELAY_CLIENT"
  | "ERR_RELAY_TARGET"
  | "ERR_TIMEOUT";

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
