/**
 * The operators' live status page (`--status host:port`, `status` key): listeners, live
 * sessions, throughput over the last 15 minutes overall and per user, a per-user table (today,
 * total, sessions, last seen, data limit used), session outcomes over time (so probing shows),
 * and the health of each upstream server of a local with several.
 *
 * Routes, all under the optional secret prefix (`status_secret_path`):
 *
 * | path | what |
 * | --- | --- |
 * | `/status/` | the page (`/status` redirects here) |
 * | `/status/snapshot.json` | the cumulative counters and tables now |
 * | `/status/history.json` | the last 15 minutes of one-second samples |
 * | `/status/events` | server-sent events: `history` once, then a `snapshot` every second |
 * | `/status/app.js`, `style.css`, `uplot.js`, `uplot.css` | the page's parts |
 *
 * The services keep cumulative counters. A timer reads them every second into a snapshot, which
 * goes to every open page; the page turns consecutive snapshots into rates itself and keeps
 * 15 minutes of them. So that a page opened now shows the past too, the server keeps the same
 * samples in a bounded ring (service/status_history.ts) and sends them first.
 *
 * Access: on loopback the page is open. With `token`, every request needs it, as
 * `Authorization: Bearer <token>`, or as the cookie that opening the page once with
 * `?token=<token>` sets (the page then reloads without it in the address bar, and its event
 * stream carries the cookie). With `secretPath`, only paths under it answer. Off loopback one of
 * them is required: `startStatusServer` refuses to start without, and the handler, when it can
 * see the client's address, answers a non-loopback client 403.
 * @module
 */
import { addressFromHost, formatAddress } from "../protocol/address.ts";
import {
  ConfigError,
  createStatusCounts,
  errorMessage,
  type SessionStatus,
  STATUSES,
} from "../protocol/errors.ts";
import { type Logger, silentLogger } from "../relay/log.ts";
import type { RunningService } from "../relay/service.ts";
import type { ServerHealth, ServerState } from "../outbound/balancer.ts";
import { timingSafeEqualText } from "./api.ts";
import {
  type Counters,
  DailyCounters,
  HISTORY_CAPACITY,
  OUTCOME_GROUP_OF,
  OUTCOME_GROUPS,
  type Sample,
  StatusHistory,
} from "./status_history.ts";
import { STATUS_ASSETS } from "./status_page.ts";
import type { FleetView } from "./fleet_node.ts";

/** One listener as the status page sees it (a server's `ListenerEntry` is one). */
export interface StatusListener {
  readonly config: {
    readonly address: string;
    readonly port: number;
    readonly method: string;
    readonly mode: string;
    /** The users of a multi-user listener; absent for a single-key one. */
    readonly users?: readonly { readonly name: string; readonly dataLimit?: number }[];
  };
  readonly service: RunningService;
}

/** Where the page's numbers come from; read at every tick, so reloads and API changes show. */
export interface StatusSources {
  /** Shown in the header: `server`, `local` or `tunnel`. */
  readonly role: string;
  /** The listeners running now (server: `() => supervisor.listeners`). */
  readonly listeners: () => readonly StatusListener[];
  /** A client role's upstream servers (`() => upstreams.balancer.servers`). */
  readonly upstreams?: () => readonly ServerState[];
  /** A fleet node's view of its fleet (service/fleet_node.ts). */
  readonly fleet?: () => FleetView;
  /** Isolates accepting on the server's TCP ports now (service/workers.ts). Default: 1. */
  readonly workers?: () => number;
}

export interface StatusHandlerOptions {
  readonly sources: StatusSources;
  /** The running version, shown in the header. */
  readonly version: string;
  /** Stops the timer and ends every event stream. */
  readonly signal: AbortSignal;
  /** Required as `Authorization: Bearer …` (or the cookie `?token=` sets) when set. */
  readonly token?: string;
  /** A path prefix only the operator knows, e.g. `/8Kf3…` (`/` and 8 or more of `A-Za-z0-9._~-`). */
  readonly secretPath?: string;
  /** Time between snapshots. Default 1000 ms. */
  readonly intervalMs?: number;
  /** Samples of history kept. Default 900 (15 minutes at one a second). */
  readonly historyCapacity?: number;
  /** Event streams open at once; more get a 503. Default 16. */
  readonly maxClients?: number;
  /** Rows of the user table (the most active first); the rest are counted, not listed. Default 1000. */
  readonly maxUsers?: number;
  /** When the process started (ms since the epoch), for the uptime. Default: now. */
  readonly startedAt?: number;
  /** The clock, in ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /** Where a failing tick is reported. Default: nowhere. */
  readonly logger?: Logger;
}

/**
 * Answers the status routes; resolves to `undefined` for any other path, so that it can share a
 * listener with the API and the metrics. `info` (from `Deno.serve`) lets it refuse non-loopback
 * clients when neither a token nor a secret path is set.
 */
export type StatusHandler = (
  request: Request,
  info?: Deno.ServeHandlerInfo,
) => Promise<Response | undefined>;

/** One row of the user table: a user of a multi-user listener, or a single-key listener. */
export interface StatusUser {
  /** Unique among rows: `listener/name`, or `listener` for a single-key listener. */
  key: string;
  /** The user's name; `null` for a single-key listener. */
  name: string | null;
  /** The listener's `address:port`. */
  listener: string;
  /** Plaintext bytes, TCP and UDP, since the counters began (restored state included). */
  up: number;
  down: number;
  /** Since `StatusSnapshot.todaySince`. */
  todayUp: number;
  todayDown: number;
  /** Sessions started (TCP sessions and UDP sessions). */
  sessions: number;
  /** When the user last started a TCP session (ms since the epoch); `null` when unknown. */
  lastSeen: number | null;
  /** The user's data limit in bytes, and what counts against it (up + down). */
  dataLimit: number | null;
  used: number;
}

/** What `/status/snapshot.json` and each `snapshot` event carry. */
export interface StatusSnapshot {
  version: string;
  role: string;
  workers: number;
  startedAt: number;
  /** Where "today" starts: the last local midnight, or the start when that was later. */
  todaySince: number;
  counters: Counters;
  /** TCP sessions ended since start, by status. */
  statuses: Record<SessionStatus, number>;
  udpAssociations: number;
  listeners: Array<{
    address: string;
    method: string;
    mode: string;
    users: number;
    live: number;
  }>;
  users: StatusUser[];
  /** Rows left out of `users` (beyond `maxUsers`). */
  usersOmitted: number;
  upstreams: Array<{
    name: string;
    health: ServerHealth;
    latencyMs: number | null;
    lastError: string | null;
  }>;
  /** Fleet mode: this node, its link to Redis, and the nodes with a live heartbeat. */
  fleet: {
    node: string;
    up: boolean;
    unflushedBytes: number;
    nodes: Array<{ node: string; load: number; seenAt: number }>;
  } | null;
}

/** What `/status/history.json` and the first event carry. */
export interface StatusHistoryDocument {
  intervalMs: number;
  capacity: number;
  maxUsers: number;
  groups: readonly string[];
  samples: Sample[];
  /** The counters the next sample starts from. */
  counters: Counters | undefined;
}

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_MAX_CLIENTS = 16;
const DEFAULT_MAX_USERS = 1000;
/**
 * Events a slow page may fall behind before its stream is ended (it reconnects and starts from
 * the history again): about half a minute of snapshots, so a stalled tab costs bounded memory.
 */
const MAX_QUEUED_EVENTS = 32;
const COOKIE = "ssdeno_status";
const SECRET_PATH = /^\/[A-Za-z0-9._~-]{8,}$/;

const encoder = new TextEncoder();

/** Creates the status routes and starts reading the counters every second until `signal`. */
export function statusHandler(options: StatusHandlerOptions): StatusHandler {
  return createStatus(options).handle;
}

/** The routes, and the access check alone (for the metrics that share the listener). */
function createStatus(options: StatusHandlerOptions): {
  handle: StatusHandler;
  refuse: (request: Request, info?: Deno.ServeHandlerInfo) => Response | undefined;
} {
  if (options.secretPath !== undefined && !SECRET_PATH.test(options.secretPath)) {
    throw new ConfigError(
      `Invalid status_secret_path: expected "/" and at least 8 letters, digits or ._~-`,
    );
  }
  if (options.token !== undefined && options.token === "") {
    throw new ConfigError(`Invalid status_token: expected a non-empty string`);
  }
  const prefix = options.secretPath ?? "";
  const base = `${prefix}/status/`;
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
  const maxUsers = options.maxUsers ?? DEFAULT_MAX_USERS;
  const startedAt = options.startedAt ?? now();
  const history = new StatusHistory({ capacity: options.historyCapacity ?? HISTORY_CAPACITY });
  const daily = new DailyCounters(now());
  const clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const logger = options.logger ?? silentLogger;

  let last = readSnapshot(options, { startedAt, daily, maxUsers, at: now() });
  history.add(last.counters);
  const tick = () => {
    try {
      last = readSnapshot(options, { startedAt, daily, maxUsers, at: now() });
      history.add(last.counters);
    } catch (error) {
      logger.error(`status: cannot read the counters: ${errorMessage(error)}`);
      return;
    }
    const bytes = encoder.encode(event("snapshot", last));
    for (const client of [...clients]) {
      if ((client.desiredSize ?? 0) < -MAX_QUEUED_EVENTS) {
        dropClient(client);
        continue;
      }
      try {
        client.enqueue(bytes);
      } catch (error) {
        // The stream ended without a cancel (errored): forget it.
        if (!(error instanceof TypeError)) throw error;
        clients.delete(client);
      }
    }
  };
  const dropClient = (client: ReadableStreamDefaultController<Uint8Array>) => {
    clients.delete(client);
    try {
      client.close();
    } catch (error) {
      // Already closed or errored by the page going away: nothing left to end.
      if (!(error instanceof TypeError)) throw error;
    }
  };
  let timer: ReturnType<typeof setInterval> | undefined;
  if (!options.signal.aborted) {
    timer = setInterval(tick, intervalMs);
    options.signal.addEventListener("abort", () => {
      clearInterval(timer);
      for (const client of [...clients]) dropClient(client);
    }, { once: true });
  }

  const historyDocument = (): StatusHistoryDocument => ({
    intervalMs,
    capacity: history.capacity,
    maxUsers: history.maxUsers,
    groups: OUTCOME_GROUPS,
    samples: history.samples(),
    counters: history.last,
  });

  /** The event stream (`head`: its headers only, with no stream behind them). */
  const events = (head: boolean): Response => {
    if (options.signal.aborted) return text(503, "The status page is shutting down\n");
    if (clients.size >= maxClients) return text(503, "Too many status pages open\n");
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = head ? null : new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        clients.add(controller);
        controller.enqueue(encoder.encode(
          `retry: 2000\n\n${event("history", historyDocument())}${event("snapshot", last)}`,
        ));
      },
      cancel() {
        clients.delete(self);
      },
    });
    return new Response(body, {
      headers: {
        ...SECURITY_HEADERS,
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
      },
    });
  };

  const refuse = (request: Request, info?: Deno.ServeHandlerInfo) =>
    checkAccess(request, new URL(request.url), info, options, base);
  const handle: StatusHandler = (request, info) => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path !== `${prefix}/status` && !path.startsWith(base)) {
      return Promise.resolve(undefined);
    }
    const refused = checkAccess(request, url, info, options, base);
    if (refused) return Promise.resolve(refused);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return Promise.resolve(text(405, "Method not allowed\n", { allow: "GET, HEAD" }));
    }
    if (path === `${prefix}/status`) return Promise.resolve(redirect(base));
    const name = path.slice(base.length);
    if (name === "snapshot.json") return Promise.resolve(json(last));
    if (name === "history.json") return Promise.resolve(json(historyDocument()));
    if (name === "events") return Promise.resolve(events(request.method === "HEAD"));
    const file = name === "" ? "index.html" : name;
    const asset = Object.hasOwn(STATUS_ASSETS, file) ? STATUS_ASSETS[file] : undefined;
    if (asset === undefined) return Promise.resolve(text(404, "Not found\n"));
    return Promise.resolve(
      new Response(asset.body, {
        headers: { ...SECURITY_HEADERS, "content-type": asset.type, "cache-control": "no-cache" },
      }),
    );
  };
  return { handle, refuse };
}

/** What `startStatusServer` needs. */
export interface StatusServerOptions extends Omit<StatusHandlerOptions, "signal"> {
  readonly hostname: string;
  readonly port: number;
  /** Closes the server when aborted (or call `close`). */
  readonly signal?: AbortSignal;
  /**
   * Also serve this text at `<secret path>/metrics` (Prometheus), behind the same token: e.g.
   * `() => renderMetrics(...)`.
   */
  readonly metrics?: () => string;
  /**
   * Answers every other request (e.g. `apiHandler(...)` from service/api.ts, which checks its
   * own token and path). Default: a 404 (and `/` redirects to the page when there is no secret
   * path).
   */
  readonly fallback?: (request: Request) => Response | Promise<Response>;
}

/** A started status listener. */
export interface RunningStatus {
  readonly addr: Deno.NetAddr;
  /** The page's address (without the token). */
  readonly url: string;
  /** Ends the event streams and the timer, then the listener. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves the status page on `hostname:port` (port 0: a free one). Throws a `ConfigError` when
 * the address is not loopback and neither `token` nor `secretPath` is set: the page names the
 * users and what they move, and must not be open to whoever finds the port.
 */
export function startStatusServer(options: StatusServerOptions): RunningStatus {
  if (!isLoopbackHost(options.hostname) && !options.token && !options.secretPath) {
    throw new ConfigError(
      `Invalid status "${formatAddress(addressFromHost(options.hostname, options.port))}": ` +
        `off loopback it needs status_token or status_secret_path`,
    );
  }
  const stop = new AbortController();
  const { metrics, fallback } = options;
  const { handle, refuse } = createStatus({ ...options, signal: stop.signal });
  const prefix = options.secretPath ?? "";
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: options.hostname, port: options.port, onListen: () => {} },
      async (request, info) => {
        const answer = await handle(request, info);
        if (answer) return answer;
        const path = new URL(request.url).pathname;
        if (metrics && path === `${prefix}/metrics`) {
          const refused = refuse(request, info);
          if (refused) return refused;
          return new Response(metrics(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        }
        if (fallback) return await fallback(request);
        if (path === "/" && prefix === "") return redirect("/status/");
        return text(404, "Not found\n");
      },
    );
  } catch (error) {
    stop.abort();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      stop.abort();
      await server.shutdown();
    })();
  options.signal?.addEventListener("abort", () => close(), { once: true });
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return { addr, url: `http://${host}:${addr.port}${prefix}/status/`, close };
}

/** The counters and tables now. */
function readSnapshot(
  options: StatusHandlerOptions,
  state: { startedAt: number; daily: DailyCounters; maxUsers: number; at: number },
): StatusSnapshot {
  const { sources } = options;
  const listeners = sources.listeners();
  const statuses = createStatusCounts();
  const rows: StatusUser[] = [];
  let up = 0, down = 0, live = 0, udpAssociations = 0;
  const described = listeners.map(({ config, service }) => {
    const { stats, udpStats } = service;
    const listener = formatAddress(addressFromHost(config.address, service.addr.port));
    for (const status of STATUSES) statuses[status] += stats.statuses[status];
    up += stats.bytesUplink + (udpStats?.bytesUplink ?? 0);
    down += stats.bytesDownlink + (udpStats?.bytesDownlink ?? 0);
    live += stats.active;
    udpAssociations += udpStats?.associations ?? 0;
    if (config.users === undefined) {
      const ended = STATUSES.reduce((sum, status) => sum + stats.statuses[status], 0);
      const rowUp = stats.bytesUplink + (udpStats?.bytesUplink ?? 0);
      const rowDown = stats.bytesDownlink + (udpStats?.bytesDownlink ?? 0);
      rows.push({
        key: listener,
        name: null,
        listener,
        up: rowUp,
        down: rowDown,
        todayUp: 0,
        todayDown: 0,
        sessions: ended + stats.active + (udpStats?.associationsOpened ?? 0),
        lastSeen: null,
        dataLimit: null,
        used: rowUp + rowDown,
      });
    } else {
      for (const user of config.users) {
        const tcp = stats.users[user.name];
        const udp = udpStats?.users[user.name];
        const rowUp = (tcp?.bytesUplink ?? 0) + (udp?.bytesUplink ?? 0);
        const rowDown = (tcp?.bytesDownlink ?? 0) + (udp?.bytesDownlink ?? 0);
        rows.push({
          key: `${listener}/${user.name}`,
          name: user.name,
          listener,
          up: rowUp,
          down: rowDown,
          todayUp: 0,
          todayDown: 0,
          sessions: (tcp?.sessions ?? 0) + (udp?.sessions ?? 0),
          lastSeen: tcp?.lastSeen ? tcp.lastSeen : null,
          dataLimit: user.dataLimit ?? null,
          used: rowUp + rowDown,
        });
      }
    }
    return {
      address: listener,
      method: config.method,
      mode: config.mode,
      users: config.users?.length ?? 0,
      live: stats.active,
    };
  });
  rows.sort((a, b) => b.up + b.down - (a.up + a.down));
  const shown = rows.slice(0, state.maxUsers);
  const cumulative: Record<string, [number, number]> = {};
  for (const row of shown) cumulative[row.key] = [row.up, row.down];
  const today = state.daily.update(state.at, cumulative);
  for (const row of shown) [row.todayUp, row.todayDown] = today[row.key]!;
  const outcomes = OUTCOME_GROUPS.map(() => 0);
  for (const status of STATUSES) {
    outcomes[OUTCOME_GROUPS.indexOf(OUTCOME_GROUP_OF[status])]! += statuses[status];
  }
  return {
    version: options.version,
    role: sources.role,
    workers: sources.workers?.() ?? 1,
    startedAt: state.startedAt,
    todaySince: state.daily.since,
    counters: { at: state.at, up, down, live, outcomes, users: cumulative },
    statuses,
    udpAssociations,
    listeners: described,
    users: shown,
    usersOmitted: rows.length - shown.length,
    upstreams: (sources.upstreams?.() ?? []).map((server) => ({
      name: server.outbound.name,
      health: server.health,
      latencyMs: server.latencyMs ?? null,
      lastError: server.lastError ?? null,
    })),
    fleet: fleetOf(sources),
  };
}

function fleetOf(sources: StatusSources): StatusSnapshot["fleet"] {
  const view = sources.fleet?.();
  if (view === undefined) return null;
  return {
    node: view.node,
    up: view.stats.state === "up",
    unflushedBytes: view.stats.unflushedBytes,
    nodes: view.nodes.map(({ node, load, seenAt }) => ({ node, load, seenAt })),
  };
}

/** A 401/403 when the request may not see the page; `undefined` when it may. */
function checkAccess(
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo | undefined,
  options: StatusHandlerOptions,
  base: string,
): Response | undefined {
  const { token } = options;
  if (token === undefined) {
    if (options.secretPath !== undefined || info === undefined) return undefined;
    const remote = info.remoteAddr;
    if (remote.transport === "tcp" && !isLoopbackHost(remote.hostname)) {
      return text(
        403,
        "The status page answers loopback clients only, unless status_token or status_secret_path is set\n",
      );
    }
    return undefined;
  }
  const bearer = request.headers.get("authorization");
  if (bearer !== null && timingSafeEqualText(bearer, `Bearer ${token}`)) return undefined;
  const cookie = cookieValue(request.headers.get("cookie"), COOKIE);
  if (cookie !== undefined && timingSafeEqualText(cookie, token)) return undefined;
  const given = url.searchParams.get("token");
  if (given !== null && timingSafeEqualText(given, token)) {
    // Trade the token in the address for a cookie, and show the page without it.
    const response = redirect(url.pathname === base ? base : url.pathname);
    response.headers.set(
      "set-cookie",
      `${COOKIE}=${encodeURIComponent(token)}; Path=${base}; HttpOnly; SameSite=Strict`,
    );
    return response;
  }
  return text(
    401,
    "Unauthorized: send Authorization: Bearer <status_token>, or open the page with ?token=\n",
    { "www-authenticate": 'Bearer realm="ssdeno status"' },
  );
}

function cookieValue(header: string | null, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at < 0 || part.slice(0, at).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      return undefined; // a malformed escape is no token
    }
  }
  return undefined;
}

/** `localhost`, `127.0.0.0/8`, `::1` (bracketed or not) and IPv4-mapped loopback. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(bare);
}

/** Headers on every page response: no framing, no sniffing, no referrer, only our own code. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json",
      "cache-control": "no-store",
    },
  });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

function redirect(location: string): Response {
  return new Response(null, {
    status: 303,
    headers: { ...SECURITY_HEADERS, location, "cache-control": "no-store" },
  });
}
