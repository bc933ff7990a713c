/**
 * The zero-config first run: `ssdeno server` with no config and no password keeps its settings
 * in `./ssdeno.json`, creating it with a random password the first time. The file is created
 * with `createNew`, so an existing one (even one written by a concurrent run) is never replaced.
 * @module
 */

import { ConfigError } from "./errors.ts";
import { DEFAULT_SERVER_PORT, type RawConfig, readConfigFile } from "./load.ts";
import { generatePassword } from "./password.ts";

/** Where the zero-config run keeps its settings, relative to the working directory. */
export const ZERO_CONFIG_PATH = "ssdeno.json";

/**
 * The method of a first run: the 2022 edition (SIP022) is replay-proof by design and keys need no
 * password stretching; its 32-byte key is what `generatePassword()` makes.
 */
export const ZERO_CONFIG_METHOD = "2022-blake3-aes-256-gcm";

/** The settings a first run writes: every listener setting spelled out for the user to edit. */
export function newZeroConfig(): RawConfig {
  return {
    server: "0.0.0.0",
    server_port: DEFAULT_SERVER_PORT,
    password: generatePassword(32),
    method: ZERO_CONFIG_METHOD,
    mode: "tcp_only",
    timeout: 300,
  };
}

/** The zero-config settings after validation, and whether this run created the file. */
export interface ZeroConfig<T> {
  value: T;
  created: boolean;
}

/**
 * Reads `path` if it exists, else creates it with {@linkcode newZeroConfig}. `validate` runs
 * before anything is written, so a mistake in the flags never leaves a file behind.
 */
export async function loadOrCreateZeroConfig<T>(
  validate: (file: RawConfig) => T,
  path = ZERO_CONFIG_PATH,
): Promise<ZeroConfig<T>> {
  const existing = await readZeroConfig(path);
  if (existing !== undefined) return { value: validate(existing), created: false };
  const file = newZeroConfig();
  const value = validate(file);
  try {
    // 0o600: the file holds the password.
    await Deno.writeTextFile(path, `${JSON.stringify(file, null, 2)}\n`, {
      createNew: true,
      mode: 0o600,
    });
  } catch (error) {
    // Another run created it in between: use theirs, as if it had been there first.
    if (error instanceof Deno.errors.AlreadyExists) {
      return { value: validate(await readConfigFile(path)), created: false };
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `Cannot create "${path}": ${reason.replace(/: \w+ '.*'$/, "")}; run in a writable ` +
        `directory, or give the settings with -c FILE or -k PASSWORD`,
      { cause: error },
    );
  }
  return { value, created: true };
}

/** The parsed `path`, or `undefined` when there is no such file. */
export async function readZeroConfig(path = ZERO_CONFIG_PATH): Promise<RawConfig | undefined> {
  try {
    await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return await readConfigFile(path);
}
