/**
 * Hex, the form every reported input takes: it survives copying from a terminal into
 * `fuzz/run.ts --input` and into fuzz/regressions.ts.
 * @module
 */

/** Lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

/** Bytes of a hex string; throws `RangeError` for anything else. */
export function fromHex(text: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) {
    throw new RangeError(`Invalid hex "${text.slice(0, 40)}"`);
  }
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}
