/**
 * Inputs that once failed, by target: every run replays them right after the seeds, so a bug a
 * long run found keeps failing the short run in the test suite until the parser is fixed (and
 * then guards the fix). Append what `deno task fuzz` reports as `minimal`; never remove one.
 * @module
 */

/** Deep enough to overflow any default stack, main thread or worker. */
const NESTED_ARRAYS = "5b".repeat(100_000);

/** Target name → inputs as hex. */
export const REGRESSIONS: Readonly<Record<string, readonly string[]>> = {
  // A domain name that is only a UTF-8 byte-order mark decodes to "" (TextDecoder drops a
  // leading BOM), which the Shadowsocks header encoder then refuses with a RangeError.
  "socks5": ["0501020503000303efbbbf0050"],
  "socks4": ["040100350000006500efbbbf00"],
  // jsonErrorOffset() recurses once per nesting level of an unclosed JSON text.
  "config-local": [NESTED_ARRAYS],
  "config-server": [NESTED_ARRAYS],
  "sip008": [NESTED_ARRAYS],
};
