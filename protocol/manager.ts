/**
 * The ss-manager control protocol (NOTES.md §13, NOTES-2.md §18.4): one datagram per command,
 * `command` or `command: <JSON>`, split at the first `:`. Pure parsing and encoding; the
 * service that runs it is service/manager.ts.
 *
 * Accepted, as libev and shadowsocks-rust send them: `add: {"server_port": …, "password": …}`
 * with the optional `method`, `mode`, `no_delay`, `plugin`, `plugin_opts`, `plugin_mode`,
 * `users`, `fast_open` (`server_port` as a number, or a numeric string as libev allows);
 * `remove: {"server_port": …}`; `ping`; `list`. Anything else is a `ManagerError`, whose message
 * is the reply (libev answers `err`; ours names the problem, as rust's does).
 * @module
 */

/** A command that cannot be served; its message is sent back. */
export class ManagerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ManagerError";
  }
}

/** Longest command we read (libev ignores requests over half its buffer of 2 KiB or so). */
export const MAX_COMMAND_BYTES = 4096;

/** The keys `add` reads, under their config-file names. */
export interface AddRequest {
  readonly server_port: number;
  readonly password: string;
  readonly method?: string;
  readonly mode?: string;
  readonly no_delay?: boolean;
  readonly plugin?: string;
  readonly plugin_opts?: string;
  readonly users?: readonly { name: string; password: string }[];
}

export type ManagerCommand =
  | { readonly command: "add"; readonly request: AddRequest }
  | { readonly command: "remove"; readonly port: number }
  | { readonly command: "ping" }
  | { readonly command: "list" };

const ADD_KEYS = new Set([
  "server_port",
  "password",
  "method",
  "mode",
  "no_delay",
  "fast_open",
  "plugin",
  "plugin_opts",
  "plugin_mode",
  "users",
]);

/** Parses one datagram's text. Throws `ManagerError` with the reply for anything wrong. */
export function parseManagerCommand(text: string): ManagerCommand {
  if (text.length > MAX_COMMAND_BYTES) throw new ManagerError("err: command too long");
  const colon = text.indexOf(":");
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  const body = colon < 0 ? undefined : text.slice(colon + 1).trim();
  switch (name) {
    case "ping":
    case "list":
      if (body !== undefined && body !== "") {
        throw new ManagerError(`err: ${name} takes no argument`);
      }
      return { command: name };
    case "add":
      return { command: "add", request: parseAdd(parseObject(name, body)) };
    case "remove":
      return { command: "remove", port: port(parseObject(name, body)["server_port"]) };
    default:
      throw new ManagerError(`err: unknown command "${name.slice(0, 32)}"`);
  }
}

function parseObject(name: string, body: string | undefined): Record<string, unknown> {
  if (body === undefined || body === "") throw new ManagerError(`err: ${name} needs a JSON object`);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new ManagerError(`err: ${name}: invalid JSON`); // the parser's message adds nothing
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ManagerError(`err: ${name} needs a JSON object`);
  }
  return value as Record<string, unknown>;
}

function port(value: unknown): number {
  const number = typeof value === "string" && /^[0-9]{1,5}$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < 1 || number > 65535) {
    throw new ManagerError("err: server_port must be a port number from 1 to 65535");
  }
  return number;
}

function parseAdd(object: Record<string, unknown>): AddRequest {
  for (const key of Object.keys(object)) {
    if (!ADD_KEYS.has(key)) throw new ManagerError(`err: unknown key "${key.slice(0, 32)}"`);
  }
  const password = object["password"];
  if (typeof password !== "string" || password === "") {
    throw new ManagerError("err: password must be a non-empty string");
  }
  const request: Record<string, unknown> = { server_port: port(object["server_port"]), password };
  for (const key of ["method", "mode", "plugin", "plugin_opts"]) {
    if (object[key] === undefined) continue;
    if (typeof object[key] !== "string") throw new ManagerError(`err: ${key} must be a string`);
    request[key] = object[key];
  }
  if (object["no_delay"] !== undefined) {
    if (typeof object["no_delay"] !== "boolean") {
      throw new ManagerError("err: no_delay must be true or false");
    }
    request["no_delay"] = object["no_delay"];
  }
  if (object["users"] !== undefined) {
    const users = object["users"];
    if (
      !Array.isArray(users) ||
      users.some((user) =>
        typeof user !== "object" || user === null || typeof user.name !== "string" ||
        typeof user.password !== "string"
      )
    ) {
      throw new ManagerError('err: users must be [{"name": "…", "password": "…"}, …]');
    }
    request["users"] = users.map((user) => ({ name: user.name, password: user.password }));
  }
  return request as unknown as AddRequest;
}

/** `stat: {"8001":11370,…}`: bytes relayed per port, compact JSON as libev writes it. */
export function encodeStat(bytesByPort: ReadonlyMap<number, number>): string {
  return `stat: ${
    JSON.stringify(Object.fromEntries([...bytesByPort].map(([p, n]) => [`${p}`, n])))
  }`;
}

/** `list`'s reply, rust's form: a JSON array of the listeners' port, password, method, users. */
export function encodeList(
  listeners: readonly {
    port: number;
    password: string;
    method: string;
    users?: readonly { name: string; password: string }[];
  }[],
): string {
  return JSON.stringify(listeners.map((l) => ({
    server_port: l.port,
    password: l.password,
    method: l.method,
    ...(l.users ? { users: l.users } : {}),
  })));
}
