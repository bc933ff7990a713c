/**
 * Shared helpers of the 2022-edition tests: known-answer files from tests/testdata, hex/base64,
 * and a check for `ProtocolError` codes.
 */
import assert from "node:assert/strict";
import { findMethod, type MethodInfo } from "../../crypto/methods.ts";
import { ProtocolError, type ProtocolErrorCode } from "../../protocol/errors.ts";

// deno-lint-ignore no-explicit-any
export async function loadVectors(file: string): Promise<any> {
  const url = new URL(`../testdata/${file}`, import.meta.url);
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

export function base64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** The three 2022 methods, by name. */
export const METHODS_2022 = [
  "2022-blake3-aes-128-gcm",
  "2022-blake3-aes-256-gcm",
  "2022-blake3-chacha20-poly1305",
] as const;

export function method(name: string): MethodInfo {
  const info = findMethod(name);
  assert.ok(info, `unknown method ${name}`);
  return info;
}

export function randomKey(info: MethodInfo): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(info.keySize));
}

/** Asserts `fn` throws a `ProtocolError` with `code` (and a message containing `fragment`). */
export function assertProtocolError(
  fn: () => unknown,
  code: ProtocolErrorCode,
  fragment?: string,
): ProtocolError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof ProtocolError, `expected a ProtocolError, got ${String(thrown)}`);
  assert.equal(thrown.code, code, `wrong code for: ${thrown.message}`);
  if (fragment !== undefined) {
    assert.ok(
      thrown.message.includes(fragment),
      `expected ${JSON.stringify(thrown.message)} to contain ${JSON.stringify(fragment)}`,
    );
  }
  return thrown;
}
