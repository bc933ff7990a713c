/**
 * The error class for user mistakes in flags, config files and `ss://` URIs. `main.ts` prints
 * only its message (no stack trace) and exits with code 2, so the message must stand alone as
 * one clear sentence that names the flag or key and the accepted values.
 * @module
 */

/** A configuration or command-line mistake the user can fix. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}
