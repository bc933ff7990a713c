/**
 * The zero-config first run: `ssdeno server` with no config and no password keeps its settings
 * in `./ssdeno.json`, creating it with a random password the first time. The file is created
 * with `createNew`, so an existing one (even one written by a concurrent run) is never replaced.
 * @module
 */

import { ConfigError } from "./errors.ts";
import { DEFAULT_SERVER_PORT, type RawConfig, readConfigFile } from "./load.ts";
import { generatePassword } from "./password.ts";
import { findMethod } from "../crypto/methods.ts";

/** Where the zero-config run keeps its settings, relative to the working directory. */
export const ZERO_CONFIG_PATH = "ssdeno.json";

/**
 * The method of a first run: the 2022 edition (SIP022) is replay-proof by design and keys need no
 * password stretching; its 32-byte key is what `generatePassword()` makes.
 */
export const ZERO_CONFIG_METHOD = "2022-blake3-aes-256-gcm";

/**
 * The settings a first run writes: every listener setting spelled out for the user to edit. The
 * method, port and mode come from `-m`, `-p`, `-u`/`-U` when given, the key has the method's
 * size; by default TCP and UDP both run, since phone clients use UDP (DNS, QUIC) and lose it
 * silently otherwise.
 */
export function newZeroConfig(flags: RawConfig = {}): RawConfig {
  const method = typeof flags["method"] === "string" ? flags["method"] : ZERO_CONFIG_METHOD;
  const info = findMethod(method);
  return {
    server: "0.0.0.0",
    server_port: typeof flags["server_port"] === "number"
      ? flags["server_port"]
      : DEFAULT_SERVER_PORT,
    password: generatePassword(info?.family === "aead2022" ? info.keySize : 32),
    method,
    mode: typeof flags["mode"] === "string" ? flags["mode"] : "tcp_and_udp",
    timeout: 300,
  };
}

/**
 * Flags a zero-config run takes: written into the file it creates, and checked against the file
 * it reuses. The rest describe a listener of the user's own and need `-k` or `-c`.
 */
const ZERO_CONFIG_FLAGS = new Set(["method", "mode", "server_port"]);

/**
 * Throws when the flags cannot go with a zero-config run: listener flags (`-s`, `-p`, …) without
 * a password, or flags that contradict an existing `ssdeno.json`, which would otherwise run
 * something other than the file says (and a key of the wrong size).
 */
export function checkZeroConfigFlags(flags: RawConfig, existing: RawConfig | undefined): void {
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined || ZERO_CONFIG_FLAGS.has(key)) continue;
    if (["server", "port_password", "servers", "users"].includes(key)) {
      throw new ConfigError(
        `Missing password: ${key} describes a listener, so give -k PASSWORD (or -c FILE); ` +
          `without them ssdeno runs from ${ZERO_CONFIG_PATH}`,
      );
    }
  }
  if (existing === undefined) return;
  for (const key of ZERO_CONFIG_FLAGS) {
    const given = flags[key];
    if (given !== undefined && existing[key] !== undefined && existing[key] !== given) {
      throw new ConfigError(
        `${ZERO_CONFIG_PATH} says ${key} ${JSON.stringify(existing[key])} but the command line ` +
          `says ${JSON.stringify(given)}: edit ${ZERO_CONFIG_PATH}, or move it away to start anew`,
      );
    }
  }
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
  flags: RawConfig = {},
): Promise<ZeroConfig<T>> {
  const existing = await readZeroConfig(path);
  checkZeroConfigFlags(flags, existing);
  if (existing !== undefined) return { value: validate(existing), created: false };
  const file = newZeroConfig(flags);
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
