/**
 * The Shadowsocks Server Management API v1 (NOTES-2 §18) over HTTP (`--api H:P`, `api` key):
 * list, add, update and delete the users of a 2022 multi-user listener and read (and clear)
 * their counters, so panels written for shadowsocks-go or sing-box drive ssdeno unchanged.
 * Three route shapes, all answering the same handlers:
 *
 * - shadowsocks-go: `/api/ssm/v1/servers`, `/api/ssm/v1/servers/{server}[/users[/{name}]|/stats]`
 *   where `{server}` is a listener's port;
 * - sing-box: `/server/v1/users[/{name}]`, `/server/v1/stats` (update with `PUT`), on the first
 *   multi-user listener;
 * - the spec's bare form: `/`, `/users[/{name}]`, `/stats` (update with `PATCH`), likewise.
 *
 * Every path may sit under a secret prefix (`api_secret_path`); with `api_token` every request
 * needs `Authorization: Bearer <token>`. The listener refuses a non-loopback address unless one
 * of them is set (config/load.ts). Users changed here apply at once without dropping anyone
 * else's session; a config reload that names the listener's users replaces them again.
 * @module
 */
import type { ServerUser } from "../config/types.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { ListenerEntry, ServerSupervisor } from "./supervisor.ts";

/** What the API's routes need, whichever listener serves them (`apiHandler`). */
export interface ApiHandlerOptions {
  readonly supervisor: ServerSupervisor;
  readonly version: string;
  /** Required as `Authorization: Bearer …` when set. */
  readonly token?: string;
  /** A path prefix only the operator knows, e.g. `/8Kf3…`. */
  readonly secretPath?: string;
  /**
   * Where user changes go instead of straight to the listener (fleet mode,
   * service/fleet_node.ts: Redis first, then every node).
   */
  readonly userStore?: UserStore;
}

/** A shared home of the users: writes there first, then applies on this server. */
export interface UserStore {
  /** Throws `FleetUnavailableError` when the store cannot be reached (nothing changed). */
  putUser(entry: ListenerEntry, user: ServerUser): Promise<void>;
  deleteUser(entry: ListenerEntry, name: string): Promise<void>;
  /** Told before `?clear=true` zeroes the counters, so the store misses none of their bytes. */
  countersClearing?(): void;
}

export interface ApiOptions extends ApiHandlerOptions {
  readonly hostname: string;
  readonly port: number;
}

export interface RunningApi {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

/** Largest request body read (a user object is a few hundred bytes). */
const MAX_BODY_BYTES = 16 * 1024;

/** The six counters of the spec, for one user or the listener. */
interface Counters {
  uplinkBytes: number;
  downlinkBytes: number;
  uplinkPackets: number;
  downlinkPackets: number;
  tcpSessions: number;
  udpSessions: number;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });

/** Serves the API on `options.hostname:options.port` until `close`. */
export function startApi(options: ApiOptions): RunningApi {
  const server = Deno.serve(
    { hostname: options.hostname, port: options.port, onListen: () => {} },
    apiHandler(options),
  );
  return { addr: server.addr as Deno.NetAddr, close: () => server.shutdown() };
}

/**
 * The API as a request handler, to share a listener with others (the status page, metrics):
 * it answers every request, with a JSON 404 for paths that are not its own.
 */
export function apiHandler(options: ApiHandlerOptions): (request: Request) => Promise<Response> {
  const prefix = (options.secretPath ?? "").replace(/\/+$/, "");
  return async (request) => {
    try {
      return await route(request, options, prefix);
    } catch (error) {
      if (error instanceof ApiError) return json(error.status, { error: error.message });
      return json(500, { error: errorMessage(error) });
    }
  };
}

async function route(
  request: Request,
  options: ApiHandlerOptions,
  prefix: string,
): Promise<Response> {
  if (options.token !== undefined) {
    const given = request.headers.get("authorization") ?? "";
    if (!timingSafeEqualText(given, `Bearer ${options.token}`)) {
      throw new ApiError(401, "missing or wrong bearer token");
    }
  }
  const url = new URL(request.url);
  if (!url.pathname.startsWith(`${prefix}/`) && url.pathname !== prefix) {
    throw new ApiError(404, "not found");
  }
  const parts = url.pathname.slice(prefix.length).split("/").filter(Boolean).map(
    decodeURIComponent,
  );
  const { supervisor } = options;
  const clear = url.searchParams.get("clear");

  // shadowsocks-go: /api/ssm/v1/servers[/{port}/...]
  if (parts[0] === "api" && parts[1] === "ssm" && parts[2] === "v1" && parts[3] === "servers") {
    if (parts.length === 4 && request.method === "GET") {
      return json(200, supervisor.listeners.map((entry) => `${entry.service.addr.port}`));
    }
    const entry = supervisor.listeners.find((e) => `${e.service.addr.port}` === parts[4]);
    if (!entry) throw new ApiError(404, "server not found");
    return await handle(request, options, entry, parts.slice(5), clear);
  }
  // sing-box: /server/v1/...
  if (parts[0] === "server" && parts[1] === "v1") {
    return await handle(request, options, defaultListener(supervisor), parts.slice(2), clear);
  }
  return await handle(request, options, defaultListener(supervisor), parts, clear);
}

/** The first listener with users (the one the unprefixed routes manage). */
function defaultListener(supervisor: ServerSupervisor): ListenerEntry {
  const entry = supervisor.listeners.find((e) => e.config.users !== undefined);
  if (!entry) throw new ApiError(404, "The server does not support user management.");
  return entry;
}

async function handle(
  request: Request,
  options: ApiHandlerOptions,
  entry: ListenerEntry,
  parts: string[],
  clear: string | null,
): Promise<Response> {
  const method = request.method;
  if (parts.length === 0 && method === "GET") {
    return json(200, { server: `ssdeno ${options.version}`, apiVersion: "v1" });
  }
  if (parts[0] === "stats" && parts.length === 1 && method === "GET") {
    const body = statsOf(entry);
    if (clear === "true" || clear === "") {
      options.userStore?.countersClearing?.();
      clearCounters(entry);
    }
    return json(200, body);
  }
  if (parts[0] !== "users") throw new ApiError(404, "not found");
  const users = entry.config.users;
  if (!users) throw new ApiError(404, "The server does not support user management.");
  if (parts.length === 1) {
    if (method === "GET") {
      return json(200, { users: users.map((u) => ({ username: u.name, uPSK: u.password })) });
    }
    if (method === "POST") {
      const body = await readBody(request);
      const username = field(body, "username");
      const uPSK = field(body, "uPSK");
      if (users.some((u) => u.name === username)) {
        throw new ApiError(400, `user ${username} already exists`);
      }
      await change(options, entry, { put: { name: username, password: uPSK } });
      return json(201, { username, uPSK });
    }
    throw new ApiError(405, "method not allowed");
  }
  const name = parts[1]!;
  const user = users.find((u) => u.name === name);
  if (!user || parts.length > 2) throw new ApiError(404, "user not found");
  if (method === "GET") {
    return json(200, { username: user.name, uPSK: user.password, ...userCounters(entry, name) });
  }
  if (method === "DELETE") {
    if (users.length === 1) throw new ApiError(400, "cannot remove the last user");
    await change(options, entry, { remove: name });
    return new Response(null, { status: 204 });
  }
  // The spec updates with PATCH (and refuses an unchanged key), sing-box with PUT: both work.
  if (method === "PATCH" || method === "PUT") {
    const uPSK = field(await readBody(request), "uPSK");
    if (uPSK === user.password && method === "PATCH") {
      throw new ApiError(400, `user ${name} already has the same uPSK`);
    }
    // The key changes; the user's data limit and expiry stay.
    const { refused: _, ...kept } = user;
    await change(options, entry, { put: { ...kept, password: uPSK } });
    return new Response(null, { status: 204 });
  }
  throw new ApiError(405, "method not allowed");
}

/**
 * Adds, rekeys or removes one user: through the user store when there is one, else on the
 * listener directly. A bad key is a 400 and changes nothing; an unreachable store a 503.
 */
async function change(
  options: ApiHandlerOptions,
  entry: ListenerEntry,
  what: { put: ServerUser } | { remove: string },
): Promise<void> {
  const users = entry.config.users ?? [];
  try {
    if (options.userStore) {
      if ("put" in what) await options.userStore.putUser(entry, what.put);
      else await options.userStore.deleteUser(entry, what.remove);
      return;
    }
    let next: ServerUser[];
    if ("put" in what) {
      // A rekeyed user keeps their place in the list.
      const index = users.findIndex((u) => u.name === what.put.name);
      next = index >= 0 ? users.with(index, what.put) : [...users, what.put];
    } else {
      next = users.filter((u) => u.name !== what.remove);
    }
    options.supervisor.updateUsers(entry, next);
  } catch (error) {
    if (error instanceof Error && error.name === "FleetUnavailableError") {
      throw new ApiError(503, `the fleet's user store is unreachable: ${errorMessage(error)}`);
    }
    throw new ApiError(400, errorMessage(error));
  }
}

async function readBody(request: Request): Promise<Record<string, unknown>> {
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) throw new ApiError(413, "request body too large");
  // Read with a cap: a chunked body declares no length, and must not fill memory either.
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of request.body ?? []) {
    total += part.length;
    if (total > MAX_BODY_BYTES) throw new ApiError(413, "request body too large");
    parts.push(part);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ApiError(400, "the body is not valid JSON"); // the parser's message adds nothing
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ApiError(400, "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function field(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== "string" || value === "") {
    throw new ApiError(400, `${key} must be a non-empty string`);
  }
  if (value.length > 1024) throw new ApiError(400, `${key} is too long`);
  return value;
}

function userCounters(entry: ListenerEntry, name: string): Counters {
  const tcp = entry.service.stats.users[name];
  const udp = entry.service.udpStats?.users[name];
  return {
    uplinkBytes: (tcp?.bytesUplink ?? 0) + (udp?.bytesUplink ?? 0),
    downlinkBytes: (tcp?.bytesDownlink ?? 0) + (udp?.bytesDownlink ?? 0),
    uplinkPackets: udp?.datagramsRelayed ?? 0,
    downlinkPackets: udp?.repliesRelayed ?? 0,
    tcpSessions: tcp?.sessions ?? 0,
    udpSessions: udp?.sessions ?? 0,
  };
}

function statsOf(entry: ListenerEntry) {
  const { stats, udpStats } = entry.service;
  const totals: Counters = {
    uplinkBytes: stats.bytesUplink + (udpStats?.bytesUplink ?? 0),
    downlinkBytes: stats.bytesDownlink + (udpStats?.bytesDownlink ?? 0),
    uplinkPackets: udpStats?.statuses.OK ?? 0,
    downlinkPackets: udpStats?.repliesRelayed ?? 0,
    tcpSessions: Object.values(stats.statuses).reduce((a, b) => a + b, 0) + stats.active,
    udpSessions: udpStats?.associationsOpened ?? 0,
  };
  const users = (entry.config.users ?? []).map((u) => ({
    username: u.name,
    ...userCounters(entry, u.name),
  }));
  return users.length > 0 ? { ...totals, users } : totals;
}

/** `?clear=true`: the per-user counters start again from zero (totals are the service's). */
function clearCounters(entry: ListenerEntry): void {
  for (const user of Object.values(entry.service.stats.users)) {
    user.sessions = user.bytesUplink = user.bytesDownlink = 0;
  }
  for (const user of Object.values(entry.service.udpStats?.users ?? {})) {
    user.sessions = user.datagramsRelayed = user.repliesRelayed = 0;
    user.bytesUplink = user.bytesDownlink = 0;
  }
}

/** Whether `a` and `b` are equal, in a time that does not depend on where they differ. */
export function timingSafeEqualText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
