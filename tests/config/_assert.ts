import assert from "node:assert/strict";
import { ConfigError } from "../../config/errors.ts";

/**
 * Asserts that `fn` throws a `ConfigError` whose message contains every fragment, and returns
 * the error so callers can check more. Async functions are awaited.
 */
export async function assertConfigError(
  fn: () => unknown,
  ...fragments: string[]
): Promise<ConfigError> {
  let thrown: unknown;
  try {
    await fn();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof ConfigError, `expected a ConfigError, got ${String(thrown)}`);
  for (const fragment of fragments) {
    assert.ok(
      thrown.message.includes(fragment),
      `expected ${JSON.stringify(thrown.message)} to contain ${JSON.stringify(fragment)}`,
    );
  }
  return thrown;
}
