/**
 * The error class for user mistakes in flags, config files and `ss://` URIs (defined in
 * protocol/errors.ts, where URI decoding can throw it too).
 * @module
 */
export { ConfigError } from "../protocol/errors.ts";
