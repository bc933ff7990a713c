/**
 * The few assertions the tests use, on top of `node:assert/strict` (JSR's @std/assert is not
 * reachable here). `assertThrows`/`assertRejects` return the error for further checks.
 */
import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

export function assertOk(value: unknown, message?: string): asserts value {
  assert.ok(value, message);
}

export function assertThrows(fn: () => unknown, message?: string): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail(message ?? "expected the function to throw");
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  message?: string,
): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  assert.fail(message ?? "expected the promise to reject");
}
