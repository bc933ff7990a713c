/** Loads known-answer data from tests/testdata (facts from specs; each file keeps its `source`). */

// deno-lint-ignore no-explicit-any
export async function loadVectors(file: string): Promise<any> {
  const url = new URL(`testdata/${file}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url));
}

export function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
