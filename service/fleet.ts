/**
 * Fleet mode (issue 17): many servers share replay protection, users, byte counts and quotas
 * through one Redis (standalone, managed by URL, or a Redis Cluster).
 *
 * ## Design
 *
 * Redis is a helper, never a dependency a session waits on without bound. Every operation
 * answers at once from local state when Redis is down, and within `saltTimeoutMs` /
 * `commandTimeoutMs` when Redis hangs. The server keeps its local replay store and counters as
 * they are; the fleet adds what other nodes saw.
 *
 * ```
 * key (prefix "ssdeno")        type    written by              what
 * ssdeno:salt:<b64url salt>    string  checkSalt  SET NX PX    a salt seen in the last ttl ms
 * ssdeno:users:<listener>      hash    putUser / deleteUser    name → {"password","dataLimit"?}
 * ssdeno:listeners             hash    putListener / delete…   port → ss-manager `add` request
 * ssdeno:changes               channel put… / delete…          {"hash":"users:8388"}: reload it
 * ssdeno:usage:<user>          hash    flush (Lua)             per-node cumulative bytes + total
 * ssdeno:ips:<user>            zset    admitClientIp (Lua)     client IP → last seen (Redis TIME)
 * ssdeno:node:<node>           string  heartbeat  SET PX       {"boot","load","at"}
 * ssdeno:nodes                 zset    heartbeat               node → last beat (index only)
 * ssdeno:epoch                 string  first node up (SET NX)  random id; gone = data lost
 * ```
 *
 * Every command and script touches exactly one key, so a Redis Cluster needs no hash tags and
 * spreads salts over its shards; pub/sub is the classic kind, broadcast cluster-wide. Nothing
 * needs keyspace notifications or CONFIG (managed Redis often forbids both).
 *
 * **Connections.** Two per node: one for commands, one subscriber (only once something is
 * watched). The offline queue is off: a command issued while down fails at once instead of
 * piling up. ioredis reconnects with our backoff (doubling from `backoff.minMs` to
 * `backoff.maxMs`, with jitter so a fleet does not reconnect in step); `state` is `"up"` while
 * the command connection is ready, `reconnects` counts the returns, `onStateChange` hears both
 * ways. Three command timeouts in a row (a dead link that sent no FIN) force a reconnect.
 *
 * **Data loss.** A Redis that restarted empty (or failed over to a replica that lacked recent
 * writes) is told apart from one that merely dropped connections by `epoch`: the first node
 * to see it missing writes a new one; a node that sees an epoch other than the one it knew
 * re-publishes what it holds: its users (HSETNX: never over a newer change) and its full byte
 * counts (harmless if Redis still had them: see service/fleet_accounting.ts). Salts are not
 * re-published: the local replay stores still hold them.
 *
 * **Replay** (`checkSalt`): one `SET key 1 NX PX ttl` per authenticated connection, after the
 * local store said fresh: "fresh", "replay", or "unavailable" (down, or no answer within
 * `saltTimeoutMs`); with `strict` a server refuses on "unavailable" (`refuses()`). TTL: 2022
 * salts are valid ±30 s, so 61 s is exact; AEAD-2017 salts carry no time, so the TTL bounds
 * Redis memory (149 bytes per key, measured on Redis 7.0: 1 000 connections/s kept 10 min is
 * 90 MB) and the local Bloom filter keeps the longer history. Measured on loopback (the test
 * prints it; a shared, busy machine): 0.05-0.15 ms p50 and 0.15-0.4 ms p99 per check, one at a
 * time. Batching cannot shorten a lone check; under concurrency ioredis already keeps many
 * commands in flight on the one connection, and auto-pipelining (on by default) merges a tick's
 * commands into one write: 100 checks at once cost 0.014 ms each instead of 0.021-0.034 ms, for
 * about 0.015 ms more on a lone check.
 *
 * **Users and listeners**: a hash of users per listener (port) and one hash of listeners (the
 * ss-manager `add` requests), JSON values so a field can be added. A write publishes the hash's
 * name on `changes`; watchers reload that hash (all of it: a listener has at most a few thousand
 * users) and call back when it changed, the writer's own watcher included. Pub/sub loses
 * messages while the subscriber is down, so watchers also reload after every reconnect and
 * every `resyncIntervalMs`, and check the epoch before each reload.
 *
 * **Accounting**: `addBytes` counts locally (no I/O); every `flushIntervalMs` (2 s) the users
 * with new bytes are published as cumulative numbers (idempotent: a retried flush cannot count
 * twice) and the fleet totals of every user seen here are read back. `overQuota` is synchronous
 * for the per-byte path: it sees other nodes' bytes at most two flush intervals late, so a user
 * can overshoot a quota by what the fleet carries for them in ~4 s. What a crash can lose: bytes
 * counted since the last acknowledged flush, at most ~2 s of this node's traffic while Redis is
 * up, everything since the outage began while it is down (`stats.unflushedBytes` says how much).
 *
 * **Commands per Shadowsocks connection**: one SET (the salt), plus one EVALSHA when client
 * IPs are limited (`admitClientIp`). Byte counts cost nothing per connection: per flush interval
 * one EVALSHA per user with new bytes (it returns the total), one HGET per other user tracked
 * here, one GET of the epoch; per heartbeat interval a SET and a ZADD. Measured: 1.04 commands
 * per connection for 2 000 connections of 20 users.
 *
 * **Redis requirements**: 6.2 or newer (`SET ... GET`), or a compatible server (Valkey);
 * credentials and TLS in the URL (`rediss://user:password@host:port/db`; `tls.ca` for a private
 * CA); for a cluster, `cluster: true` and the seed nodes. `maxmemory-policy noeviction` (or enough
 * memory): an evicted salt is a replay other nodes no longer see, an evicted usage hash is lost
 * bytes, an evicted epoch makes every node re-publish (harmless).
 * @module
 */
import { Cluster, Redis } from "npm:ioredis@6.0.0";
import type { ClusterNode } from "npm:ioredis@6.0.0";
import { errorMessage } from "../protocol/errors.ts";
import { type Logger, silentLogger } from "../relay/log.ts";
import { APPLY_USAGE_LUA, UsageLedger } from "./fleet_accounting.ts";

/** Whether the command connection to Redis is ready. */
export type FleetState = "up" | "down";

/** What the fleet says of a salt the local store did not know. */
export type SaltCheck = "fresh" | "replay" | "unavailable";

/** A user as the fleet stores it (per listener). */
export interface FleetUser {
  /** The user's key (a base64 uPSK for 2022, a password for AEAD-2017). */
  readonly password: string;
  /** Bytes the user may move, both directions, TCP and UDP, across the fleet. */
  readonly dataLimit?: number;
  /** When every node stops accepting the user (ms since the epoch). */
  readonly expiresAt?: number;
  /** Client IPs the user may connect from across the fleet (service/client_ips.ts). */
  readonly maxClientIps?: number;
}

/**
 * A listener added through the fleet: an ss-manager `add` request as received
 * (`{"server_port", "password", "method"?, ...}`), built into a config by each node.
 */
export type FleetListener = Readonly<Record<string, unknown>>;

/** A live node, from its last heartbeat. */
export interface FleetNode {
  readonly node: string;
  /** What the node reported (e.g. live sessions). */
  readonly load: number;
  /** The node's clock at its last heartbeat (ms since the epoch). */
  readonly seenAt: number;
}

/** Counters for logs and metrics. */
export interface FleetStats {
  readonly state: FleetState;
  readonly reconnects: number;
  readonly salts: { readonly fresh: number; readonly replay: number; readonly unavailable: number };
  /** Flushes that reached Redis, and those that did not (retried at the next interval). */
  readonly flushes: number;
  readonly flushFailures: number;
  /** Bytes counted here that Redis has not acknowledged: what a crash now would lose. */
  readonly unflushedBytes: number;
}

/** Options of {@linkcode Fleet.connect}. */
export interface FleetOptions {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://` (TLS); for a cluster, the seed
   * nodes (one URL each, or one URL whose nodes report the rest).
   */
  url: string | readonly string[];
  /** Treat `url` as Redis Cluster seed nodes. Default: false (one server or a managed endpoint). */
  cluster?: boolean;
  /** Prefix of every key and channel, so several fleets can share one Redis. Default "ssdeno". */
  prefix?: string;
  /** This node's name, unique in the fleet (e.g. the host name). */
  node: string;
  /** Default: silent. */
  logger?: Logger;
  /** Refuse connections whose salt the fleet cannot check (see `refuses`). Default: false. */
  strict?: boolean;
  /** The clock of heartbeats. Default: `Date.now`. */
  now?: () => number;
  /** Called on every change of `state`. */
  onStateChange?: (state: FleetState) => void;
  /** How long `connect` waits for the first connection before returning down. Default 2000. */
  connectWaitMs?: number;
  /** Reconnect delays: doubling from `minMs` to `maxMs`, with jitter. Default 100 and 5000. */
  backoff?: { minMs?: number; maxMs?: number };
  /** How long `checkSalt` waits for Redis before "unavailable". Default 250. */
  saltTimeoutMs?: number;
  /** How long any other command may take. Default 1000. */
  commandTimeoutMs?: number;
  /** Byte counts are published this often. Default 2000. */
  flushIntervalMs?: number;
  /**
   * Heartbeats go this often and live 3 times as long; 0 for none (a worker isolate of a node
   * that beats from its main isolate). Default 5000.
   */
  heartbeatIntervalMs?: number;
  /** Watched user lists are reloaded this often even without a message. Default 30 000. */
  resyncIntervalMs?: number;
  /**
   * Merge commands issued in the same tick into one write (ioredis auto-pipelining): 2.4 times
   * the salt checks per second in bursts, 0.015 ms more for a lone one. Default true.
   */
  autoPipelining?: boolean;
  /** TLS settings for `rediss://` beyond the system CAs (a private CA, a server name). */
  tls?: { ca?: string; servername?: string };
}

/** Redis is down (or did not answer in time); the operation changed nothing that is known. */
export class FleetUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FleetUnavailableError";
  }
}

const DEFAULT_PREFIX = "ssdeno";
/** Command timeouts in a row after which the connection is taken for dead and re-made. */
const TIMEOUTS_BEFORE_RECONNECT = 3;
/** Index entries of nodes silent this long are dropped from `<prefix>:nodes`. */
const NODE_INDEX_RETENTION_MS = 60 * 60 * 1000;

/**
 * Admits a session of a user from an IP when the IP is one of theirs within the window, or they
 * have fewer than `max` there; an admitted IP's time is refreshed, a refused one is not recorded
 * (it must not hold a place it never got). Returns 1 or 0.
 * KEYS[1] = the user's IP set; ARGV = ip, window in ms, max. Redis's clock, so nodes' clocks
 * don't matter.
 */
const ADMIT_IP_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', now - tonumber(ARGV[2])))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
    redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** The scripts ioredis defines on the client (EVALSHA, EVAL again after a NOSCRIPT). */
interface ScriptCommands {
  fleetApplyUsage(key: string, field: string, boot: string, counted: string): Promise<number>;
  fleetAdmitIp(key: string, ip: string, windowMs: string, max: string): Promise<number>;
}

/**
 * One node's view of the fleet. `Fleet.connect` returns it connected, or still trying (never
 * throws for an unreachable Redis); `close()` publishes the last counts and ends both
 * connections.
 */
export class Fleet implements AsyncDisposable {
  /** This node's name. */
  readonly node: string;
  /** Whether a salt the fleet cannot check is refused (see `refuses`). */
  readonly strict: boolean;
  readonly #prefix: string;
  readonly #boot = randomId();
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #onStateChange: ((state: FleetState) => void) | undefined;
  readonly #saltTimeoutMs: number;
  readonly #heartbeatMs: number;
  readonly #client: Redis;
  readonly #redacted: string;
  #subscriber: Redis | undefined;
  readonly #ledger = new UsageLedger();
  readonly #timers: ReturnType<typeof setInterval>[] = [];

  #state: FleetState = "down";
  #everUp = false;
  #downSince = 0;
  #lastError = "";
  #reconnects = 0;
  #timeoutsInRow = 0;
  #closing: Promise<void> | undefined;
  #epoch: string | undefined;
  #load = 0;
  #beats = 0;
  #warnedTwin = false;
  #warnedUnreachable = false;
  #salts = { fresh: 0, replay: 0, unavailable: 0 };
  #flushes = 0;
  #flushFailures = 0;
  #flushFailing = false;
  /** Accounting reads and writes run one at a time, so totals and acknowledgements agree. */
  #accounting: Promise<unknown> = Promise.resolve();
  readonly #tick: () => Promise<void>;
  readonly #recover: () => Promise<void>;
  /**
   * Watched hashes (`users:<listener>`, `listeners`): callbacks, the last fields seen (raw JSON,
   * what a re-publish writes back) and their JSON for comparison, and the reload.
   */
  readonly #watches = new Map<string, {
    callbacks: Set<(raw: ReadonlyMap<string, string>) => void>;
    snapshot?: Map<string, string>;
    json?: string;
    reload: () => Promise<void>;
  }>();

  private constructor(options: FleetOptions) {
    if (!/^[^\s:]+$/.test(options.node)) {
      throw new RangeError(
        `Invalid fleet node name "${options.node}": expected a non-empty name without spaces or ":"`,
      );
    }
    this.node = options.node;
    this.strict = options.strict ?? false;
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#onStateChange = options.onStateChange;
    this.#saltTimeoutMs = options.saltTimeoutMs ?? 250;
    this.#heartbeatMs = options.heartbeatIntervalMs ?? 5000;
    const urls = typeof options.url === "string" ? [options.url] : [...options.url];
    const parsed = urls.map(parseRedisUrl);
    this.#redacted = parsed.map((p) => p.redacted).join(",");
    this.#client = createClient(urls, parsed, options);
    this.#client.on("ready", () => this.#up());
    this.#client.on("close", () => this.#down());
    this.#client.on("end", () => this.#down());
    this.#client.on("error", (error: Error) => this.#error("commands", error));
    this.#tick = coalesce(() => this.#flushAndRefresh());
    this.#recover = coalesce(() => this.#recoverNow());
    const every = (ms: number, task: () => unknown) => {
      this.#timers.push(setInterval(() => {
        if (this.#state === "up") task();
      }, ms));
    };
    every(options.flushIntervalMs ?? 2000, () => this.#tick());
    if (this.#heartbeatMs > 0) every(this.#heartbeatMs, () => this.heartbeat());
    every(options.resyncIntervalMs ?? 30_000, () => this.#recover());
  }

  /**
   * Connects to Redis and waits up to `connectWaitMs` for the first connection. Resolves
   * either way (check `state`); throws only for invalid options (`RangeError`).
   */
  static async connect(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    await fleet.#waitFor("up", options.connectWaitMs ?? 2000);
    return fleet;
  }

  /** "up" while commands can reach Redis. */
  get state(): FleetState {
    return this.#state;
  }

  /** Times the connection came back after being lost. */
  get reconnects(): number {
    return this.#reconnects;
  }

  get stats(): FleetStats {
    return {
      state: this.#state,
      reconnects: this.#reconnects,
      salts: { ...this.#salts },
      flushes: this.#flushes,
      flushFailures: this.#flushFailures,
      unflushedBytes: this.#ledger.unacknowledged(),
    };
  }

  // ------------------------------------------------------------------------------------------
  // Replay

  /**
   * Records `salt` fleet-wide for `ttlMs` and says whether another node (or this one) recorded
   * it first. Never throws; "unavailable" when Redis is down or slower than `saltTimeoutMs`.
   */
  async checkSalt(salt: Uint8Array, ttlMs: number): Promise<SaltCheck> {
    if (this.#state !== "up") return this.#saltResult("unavailable");
    const key = `${this.#prefix}:salt:${base64Url(salt)}`;
    const set = this.#client.set(key, "1", "PX", Math.max(1, Math.ceil(ttlMs)), "NX");
    const reply = await this.#bounded(set, this.#saltTimeoutMs);
    if (reply === undefined) return this.#saltResult("unavailable");
    return this.#saltResult(reply === "OK" ? "fresh" : "replay");
  }

  /** Whether a server refuses a connection the fleet answered `check` for (after local fresh). */
  refuses(check: SaltCheck): boolean {
    return check === "replay" || (check === "unavailable" && this.strict);
  }

  #saltResult(result: SaltCheck): SaltCheck {
    this.#salts[result]++;
    return result;
  }

  // ------------------------------------------------------------------------------------------
  // Users and listeners: hashes every node watches

  /** The users of `listener` as Redis has them now. Throws `FleetUnavailableError` when down. */
  async loadUsers(listener: string | number): Promise<Map<string, FleetUser>> {
    return parseUsers(await this.#loadHash(`users:${listener}`), this.#logger);
  }

  /** Adds or replaces a user of `listener` and tells every node. */
  async putUser(listener: string | number, name: string, user: FleetUser): Promise<void> {
    if (name === "") throw new RangeError('Invalid user name "": expected a non-empty name');
    // What every node will read back: the same check as theirs, so none leaves it out.
    const checked = checkedUser(user);
    if (checked === undefined) {
      throw new RangeError(
        `Invalid user "${name}": expected a password, a dataLimit >= 0, a finite expiresAt ` +
          `and a maxClientIps >= 1`,
      );
    }
    await this.#putField(`users:${listener}`, name, JSON.stringify(checked));
  }

  /** Removes a user of `listener` and tells every node; false when there was none. */
  deleteUser(listener: string | number, name: string): Promise<boolean> {
    return this.#deleteField(`users:${listener}`, name);
  }

  /**
   * Calls `onChange` with the users of `listener` once loaded and again after every change
   * (made by any node, this one included), after reconnects too when something changed while
   * down. Dispose the result to stop.
   */
  watchUsers(
    listener: string | number,
    onChange: (users: ReadonlyMap<string, FleetUser>) => void,
  ): Disposable {
    return this.#watch(`users:${listener}`, (raw) => onChange(parseUsers(raw, this.#logger)));
  }

  /**
   * The listeners added through the fleet (ss-manager `add`), by port: each spec as it was put,
   * for the node to build and check (`buildConfig`). Throws `FleetUnavailableError` when down.
   */
  async loadListeners(): Promise<Map<number, FleetListener>> {
    return parseListeners(await this.#loadHash("listeners"));
  }

  /** Adds or replaces the listener on `port` on every node. */
  async putListener(port: number, spec: FleetListener): Promise<void> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Invalid port "${port}": expected 1 to 65535`);
    }
    await this.#putField("listeners", String(port), JSON.stringify(spec));
  }

  /** Removes the listener on `port` from every node; false when there was none. */
  deleteListener(port: number): Promise<boolean> {
    return this.#deleteField("listeners", String(port));
  }

  /** Like `watchUsers`, for the fleet's listeners. */
  watchListeners(onChange: (listeners: ReadonlyMap<number, FleetListener>) => void): Disposable {
    return this.#watch("listeners", (raw) => onChange(parseListeners(raw)));
  }

  /** `<prefix>:<hash>`: what `hash` names in the watch table and the change messages. */
  #hashKey(hash: string): string {
    return `${this.#prefix}:${hash}`;
  }

  async #loadHash(hash: string): Promise<Map<string, string>> {
    const fields = await this.#command(() => this.#client.hgetall(this.#hashKey(hash)));
    return new Map(Object.entries(fields).sort(([a], [b]) => a < b ? -1 : 1));
  }

  async #putField(hash: string, field: string, value: string): Promise<void> {
    await this.#command(() => this.#client.hset(this.#hashKey(hash), field, value));
    await this.#announce(hash);
  }

  async #deleteField(hash: string, field: string): Promise<boolean> {
    const removed = await this.#command(() => this.#client.hdel(this.#hashKey(hash), field));
    if (removed > 0) await this.#announce(hash);
    return removed > 0;
  }

  #watch(hash: string, onChange: (raw: ReadonlyMap<string, string>) => void): Disposable {
    const watch = this.#watches.get(hash) ??
      { callbacks: new Set(), reload: coalesce(() => this.#reload(hash)) };
    this.#watches.set(hash, watch);
    // One watcher's exception must not keep the others (or the reload) from running.
    const callback = (raw: ReadonlyMap<string, string>) => {
      try {
        onChange(raw);
      } catch (error) {
        this.#logger.error(`fleet: watcher of ${hash} failed: ${errorMessage(error)}`);
      }
    };
    watch.callbacks.add(callback);
    if (watch.snapshot !== undefined) callback(watch.snapshot);
    this.#ensureSubscriber();
    if (this.#state === "up") watch.reload();
    return {
      [Symbol.dispose]: () => {
        watch.callbacks.delete(callback);
        if (watch.callbacks.size === 0) this.#watches.delete(hash);
      },
    };
  }

  async #announce(hash: string): Promise<void> {
    try {
      await this.#command(() =>
        this.#client.publish(this.#hashKey("changes"), JSON.stringify({ hash }))
      );
    } catch (error) {
      // The write is in; watchers catch up at their next resync.
      this.#logger.debug(`fleet: change of ${hash} not announced: ${errorMessage(error)}`);
    }
  }

  async #reload(hash: string): Promise<void> {
    const watch = this.#watches.get(hash);
    if (watch === undefined || this.#state !== "up") return;
    let raw: Map<string, string>;
    try {
      // A Redis that lost its data would hand out an empty hash: re-publish first.
      await this.#serially(() => this.#checkEpoch());
      raw = await this.#loadHash(hash);
    } catch (error) {
      this.#logger.debug(`fleet: ${hash} not reloaded: ${errorMessage(error)}`);
      return;
    }
    const json = JSON.stringify([...raw]);
    if (json === watch.json) return;
    watch.snapshot = raw;
    watch.json = json;
    for (const callback of watch.callbacks) callback(raw);
  }

  #ensureSubscriber(): void {
    if (this.#subscriber !== undefined || this.#closing) return;
    const subscriber = this.#client.duplicate();
    this.#subscriber = subscriber;
    const channel = this.#hashKey("changes");
    subscriber.on("error", (error: Error) => this.#error("subscriber", error));
    subscriber.on("message", (from: string, message: string) => {
      if (from !== channel) return;
      let hash: unknown;
      try {
        hash = (JSON.parse(message) as { hash?: unknown }).hash;
      } catch {
        this.#logger.debug(`fleet: ignored a malformed change message`);
        return;
      }
      if (typeof hash === "string") this.#watches.get(hash)?.reload();
    });
    // Subscribing is allowed only once ready (no offline queue); after a reconnect ioredis
    // subscribes again by itself, and what was published meanwhile is found by reloading.
    subscriber.on("ready", () => {
      subscriber.subscribe(channel).then(
        () => this.#recover(),
        (error) => this.#logger.debug(`fleet: subscribe failed: ${errorMessage(error)}`),
      );
    });
  }

  // ------------------------------------------------------------------------------------------
  // Accounting

  /** Counts `bytes` more for `user` (no I/O: published with the next flush). */
  addBytes(user: string, bytes: number): void {
    this.#ledger.add(user, bytes);
  }

  /**
   * The user's bytes across the fleet: Redis's total now plus what this node counted since its
   * last flush; when down, the last total seen plus this node's count since.
   */
  usage(user: string): Promise<number> {
    this.#ledger.track(user);
    return this.#serially(async () => {
      if (this.#state === "up") {
        try {
          const total = await this.#command(() => this.#client.hget(this.#usageKey(user), "total"));
          this.#ledger.refresh(user, Number(total ?? 0));
        } catch (error) {
          this.#logger.debug(`fleet: usage of "${user}" not read: ${errorMessage(error)}`);
        }
      }
      return this.#ledger.estimate(user);
    });
  }

  /**
   * Whether `user` used `limit` bytes or more across the fleet, from the totals of the last
   * flush and this node's count since (synchronous: for the per-byte path). A user asked about
   * here has their total refreshed on every flush from then on.
   */
  overQuota(user: string, limit: number): boolean {
    return this.knownUsage(user) >= limit;
  }

  /** Stops refreshing `user`'s fleet total at each flush (their data limit is gone). */
  untrack(user: string): void {
    this.#ledger.untrack(user);
  }

  /**
   * The user's bytes across the fleet as known now, without I/O: the totals of the last flush
   * and this node's count since. Tracks the user like `overQuota`.
   */
  knownUsage(user: string): number {
    this.#ledger.track(user);
    return this.#ledger.estimate(user);
  }

  /**
   * Publishes the pending counts now and refreshes the totals; true when Redis acknowledged
   * everything counted before the call.
   */
  async flush(): Promise<boolean> {
    await this.#tick();
    return this.#ledger.pending().length === 0;
  }

  #usageKey(user: string): string {
    return `${this.#prefix}:usage:${user}`;
  }

  async #flushAndRefresh(): Promise<void> {
    if (this.#state !== "up") return;
    await this.#serially(async () => {
      try {
        await this.#checkEpoch();
      } catch (error) {
        this.#flushFailures++;
        this.#logger.debug(`fleet: flush skipped: ${errorMessage(error)}`);
        return;
      }
      const pending = this.#ledger.pending();
      const scripts = this.#client as unknown as ScriptCommands;
      const field = `n:${this.node}`;
      const applied = await Promise.allSettled(
        pending.map(({ user, counted }) =>
          this.#command(() =>
            scripts.fleetApplyUsage(this.#usageKey(user), field, this.#boot, String(counted))
          )
        ),
      );
      let failed = 0;
      applied.forEach((result, i) => {
        const { user, counted } = pending[i]!;
        if (result.status === "fulfilled") this.#ledger.acknowledge(user, counted, result.value);
        else failed++;
      });
      const flushed = new Set(pending.map((p) => p.user));
      const others = this.#ledger.users().filter((user) => !flushed.has(user));
      const totals = await Promise.allSettled(
        others.map((user) => this.#command(() => this.#client.hget(this.#usageKey(user), "total"))),
      );
      totals.forEach((result, i) => {
        if (result.status === "fulfilled") {
          this.#ledger.refresh(others[i]!, Number(result.value ?? 0));
        }
      });
      if (failed > 0) {
        this.#flushFailures++;
        // The first failure in a row is worth a warning; the retries are not.
        const message = `fleet: ${failed} of ${pending.length} byte counts not flushed: retrying`;
        if (this.#flushFailing) this.#logger.debug(message);
        else this.#logger.warn(message);
        this.#flushFailing = true;
      } else {
        if (pending.length > 0) this.#flushes++;
        this.#flushFailing = false;
      }
    });
  }

  /** Runs `task` after every accounting task before it. */
  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#accounting.then(task);
    this.#accounting = run.catch(() => {});
    return run;
  }

  // ------------------------------------------------------------------------------------------
  // Client IPs

  /**
   * Whether `user` may start a session from `ip`: it is one of the IPs they used across the
   * fleet within `windowMs`, or they used fewer than `max` (the IP is then recorded). Undefined
   * when Redis is down or slow (the caller decides with what it knows locally).
   */
  async admitClientIp(
    user: string,
    ip: string,
    max: number,
    windowMs: number,
  ): Promise<boolean | undefined> {
    if (this.#state !== "up") return undefined;
    const scripts = this.#client as unknown as ScriptCommands;
    const admitted = await this.#bounded(
      scripts.fleetAdmitIp(
        `${this.#prefix}:ips:${user}`,
        ip,
        String(Math.max(1, Math.ceil(windowMs))),
        String(max),
      ),
      this.#saltTimeoutMs,
    );
    return admitted === undefined ? undefined : admitted === 1;
  }

  // ------------------------------------------------------------------------------------------
  // Heartbeats

  /** Sets what the next heartbeats report as this node's load (e.g. live sessions). */
  reportLoad(load: number): void {
    this.#load = load;
  }

  /**
   * Publishes this node's heartbeat now with `load` (kept for the periodic ones); true when
   * Redis took it. The key lives three heartbeat intervals.
   */
  async heartbeat(load?: number): Promise<boolean> {
    if (load !== undefined) this.#load = load;
    // Once closing, a late beat would list this node again after close removed it.
    if (this.#state !== "up" || this.#closing || this.#heartbeatMs === 0) return false;
    const at = this.#now();
    const value = JSON.stringify({ boot: this.#boot, load: this.#load, at });
    try {
      const previous = await this.#command(() =>
        this.#client.set(this.#nodeKey(this.node), value, "PX", this.#heartbeatMs * 3, "GET")
      );
      await this.#command(() => this.#client.zadd(`${this.#prefix}:nodes`, at, this.node));
      this.#checkTwin(previous);
      this.#beats++;
      return true;
    } catch (error) {
      this.#logger.debug(`fleet: heartbeat failed: ${errorMessage(error)}`);
      return false;
    }
  }

  /** Live nodes (their heartbeat key has not expired), sorted by name. Throws when down. */
  async nodes(): Promise<FleetNode[]> {
    const index = `${this.#prefix}:nodes`;
    const names = await this.#command(() => this.#client.zrange(index, "0", "-1"));
    const values = await Promise.all(
      names.map((name) => this.#command(() => this.#client.get(this.#nodeKey(name)))),
    );
    const live: FleetNode[] = [];
    values.forEach((value, i) => {
      const beat = value === null ? undefined : parseBeat(value);
      if (beat) live.push({ node: names[i]!, load: beat.load, seenAt: beat.at });
    });
    const cutoff = this.#now() - NODE_INDEX_RETENTION_MS;
    await this.#command(() => this.#client.zremrangebyscore(index, "-inf", cutoff)).catch(() => {});
    return live.sort((a, b) => a.node < b.node ? -1 : 1);
  }

  #nodeKey(node: string): string {
    return `${this.#prefix}:node:${node}`;
  }

  /** Another process beating under our name since our last beat means two share it. */
  #checkTwin(previous: string | null): void {
    const beat = previous === null ? undefined : parseBeat(previous);
    if (beat === undefined || beat.boot === this.#boot || this.#beats === 0) return;
    if (this.#warnedTwin) return;
    this.#warnedTwin = true;
    this.#logger.error(
      `fleet: another process runs as node "${this.node}": byte counts will be wrong; give ` +
        `each node its own name`,
    );
  }

  // ------------------------------------------------------------------------------------------
  // Connection state and recovery

  #up(): void {
    if (this.#closing) return;
    this.#timeoutsInRow = 0;
    if (this.#everUp) {
      this.#reconnects++;
      const downMs = Date.now() - this.#downSince;
      this.#logger.info(
        `fleet: Redis up again after ${downMs} ms (reconnect ${this.#reconnects})`,
      );
    } else {
      this.#logger.info(`fleet: connected to ${this.#redacted} as node "${this.node}"`);
    }
    this.#everUp = true;
    this.#setState("up");
    this.#recover();
  }

  #down(): void {
    if (this.#state === "down") return;
    this.#downSince = Date.now();
    if (!this.#closing) {
      this.#logger.warn(
        `fleet: Redis down${this.#lastError ? ` (${this.#lastError})` : ""}: local replay ` +
          `store and counts go on; reconnecting with backoff`,
      );
    }
    this.#setState("down");
  }

  #error(connection: string, error: Error): void {
    this.#lastError = errorMessage(error);
    if (!this.#everUp && !this.#warnedUnreachable && !this.#closing) {
      // Once, so that a wrong URL, password or CA shows at the default log level.
      this.#warnedUnreachable = true;
      this.#logger.warn(
        `fleet: cannot reach ${this.#redacted} (${this.#lastError}): replay checks, users and ` +
          `counts stay local; retrying with backoff`,
      );
      return;
    }
    this.#logger.debug(`fleet: ${connection} connection: ${this.#lastError}`);
  }

  #setState(state: FleetState): void {
    if (this.#state === state) return;
    this.#state = state;
    try {
      this.#onStateChange?.(state);
    } catch (error) {
      this.#logger.error(`fleet: state listener failed: ${errorMessage(error)}`);
    }
  }

  /** After (re)connecting and every resync interval: data-loss check, counts, beat, users. */
  async #recoverNow(): Promise<void> {
    if (this.#state !== "up" || this.#closing) return;
    await this.#tick();
    await this.heartbeat();
    await Promise.all([...this.#watches.values()].map((watch) => watch.reload()));
  }

  /** Notices a Redis that lost its data, and re-publishes what this node holds. */
  async #checkEpoch(): Promise<void> {
    const key = `${this.#prefix}:epoch`;
    let epoch = await this.#command(() => this.#client.get(key));
    if (epoch === null) {
      const fresh = randomId();
      const set = await this.#command(() => this.#client.set(key, fresh, "NX"));
      epoch = set === "OK" ? fresh : await this.#command(() => this.#client.get(key));
    }
    if (epoch === null) throw new FleetUnavailableError("Epoch vanished while being read");
    const before = this.#epoch;
    this.#epoch = epoch;
    if (before === undefined || before === epoch) return;
    this.#ledger.forgetAcknowledged();
    let entries = 0;
    for (const [hash, watch] of this.#watches) {
      if (!watch.snapshot) continue;
      for (const [field, value] of watch.snapshot) {
        entries++;
        await this.#command(() => this.#client.hsetnx(this.#hashKey(hash), field, value));
      }
      await this.#announce(hash);
    }
    this.#logger.warn(
      `fleet: Redis lost its data (new epoch): re-published ${entries} users and listeners ` +
        `and the byte counts of this node`,
    );
  }

  /** Runs one command, counting timeouts in a row; FleetUnavailableError when down. */
  async #command<T>(run: () => Promise<T>): Promise<T> {
    if (this.#state !== "up") throw new FleetUnavailableError("Redis is down");
    try {
      const result = await run();
      this.#timeoutsInRow = 0;
      return result;
    } catch (error) {
      if (/timed out/i.test(errorMessage(error))) this.#timedOut();
      throw error instanceof FleetUnavailableError
        ? error
        : new FleetUnavailableError(`Redis command failed: ${errorMessage(error)}`, {
          cause: error,
        });
    }
  }

  /** `promise`'s value, or undefined after `ms` or on an error (the command goes on alone). */
  async #bounded<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), ms);
    });
    const answer = promise.then((value) => ({ value }), (error) => {
      this.#lastError = errorMessage(error);
      return undefined;
    });
    try {
      const result = await Promise.race([answer, timeout]);
      if (result === "timeout") {
        this.#timedOut();
        return undefined;
      }
      if (result !== undefined) this.#timeoutsInRow = 0;
      return result?.value;
    } finally {
      clearTimeout(timer);
    }
  }

  #timedOut(): void {
    if (++this.#timeoutsInRow < TIMEOUTS_BEFORE_RECONNECT || this.#state !== "up") return;
    this.#timeoutsInRow = 0;
    this.#lastError = `${TIMEOUTS_BEFORE_RECONNECT} commands timed out in a row`;
    // The link looks dead without having said so: drop it and let the backoff reconnect.
    this.#client.disconnect(true);
  }

  /** Resolves once `state` is `wanted` or after `ms`. */
  async #waitFor(wanted: FleetState, ms: number): Promise<void> {
    if (this.#state === wanted) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      poll = setInterval(() => {
        if (this.#state === wanted) resolve();
      }, 10);
    });
    clearTimeout(timer);
    clearInterval(poll);
  }

  // ------------------------------------------------------------------------------------------
  // Shutdown

  /**
   * Publishes the last counts, removes this node from the list and closes both connections.
   * Idempotent.
   */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      for (const timer of this.#timers) clearInterval(timer);
      if (this.#state === "up") {
        await this.#tick();
        try {
          await this.#command(() => this.#client.del(this.#nodeKey(this.node)));
          await this.#command(() => this.#client.zrem(`${this.#prefix}:nodes`, this.node));
        } catch (error) {
          this.#logger.debug(`fleet: node not removed from the list: ${errorMessage(error)}`);
        }
        await this.#accounting;
      }
      await Promise.all([endClient(this.#client), endClient(this.#subscriber)]);
      this.#setState("down");
    })();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// --------------------------------------------------------------------------------------------
// Helpers

/** What a Redis URL says, checked; `redacted` has no userinfo (for logs). */
interface ParsedUrl {
  readonly node: ClusterNode & { host: string; port: number };
  readonly tls: boolean;
  readonly username?: string;
  readonly password?: string;
  readonly redacted: string;
}

function parseRedisUrl(text: string): ParsedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`Invalid fleet Redis URL "${redactUrl(text)}": not a URL`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new RangeError(
      `Invalid fleet Redis URL "${redactUrl(text)}": expected redis:// or rediss://`,
    );
  }
  const tls = url.protocol === "rediss:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new RangeError(`Invalid fleet Redis URL "${redactUrl(text)}": no host`);
  return {
    node: { host, port: url.port === "" ? 6379 : Number(url.port) },
    tls,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    redacted: `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`,
  };
}

function redactUrl(text: string): string {
  return text.replace(/\/\/[^@/]*@/, "//***@");
}

function createClient(urls: string[], parsed: ParsedUrl[], options: FleetOptions): Redis {
  const minMs = options.backoff?.minMs ?? 100;
  const maxMs = options.backoff?.maxMs ?? 5000;
  const retry = (times: number) => {
    const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(times - 1, 20));
    return Math.round(ceiling * (0.5 + Math.random() / 2));
  };
  const scripts = {
    fleetApplyUsage: { lua: APPLY_USAGE_LUA, numberOfKeys: 1 },
    fleetAdmitIp: { lua: ADMIT_IP_LUA, numberOfKeys: 1 },
  };
  const first = parsed[0];
  if (first === undefined) throw new RangeError("Invalid fleet Redis URL: none given");
  const tls = first.tls
    ? {
      tls: {
        ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
        ...(options.tls?.servername ? { servername: options.tls.servername } : {}),
      },
    }
    : {};
  const connection = {
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: 5000,
    maxRetriesPerRequest: 0,
    connectionName: `ssdeno:${options.node}`,
    ...(first.username === undefined ? {} : { username: first.username }),
    ...(first.password === undefined ? {} : { password: first.password }),
    ...tls,
  };
  if (options.cluster) {
    // Cluster's command interface is Redis's; only the constructor and events differ.
    return new Cluster(parsed.map((p) => p.node), {
      clusterRetryStrategy: retry,
      enableOfflineQueue: false,
      enableAutoPipelining: options.autoPipelining ?? true,
      scripts,
      redisOptions: connection,
    }) as unknown as Redis;
  }
  return new Redis(urls[0]!, {
    ...connection,
    retryStrategy: retry,
    enableOfflineQueue: false,
    enableAutoPipelining: options.autoPipelining ?? true,
    scripts,
  });
}

/** Ends a client and waits for its socket to close (bounded). */
async function endClient(client: Redis | undefined): Promise<void> {
  if (client === undefined || client.status === "end") return;
  // Waiting to retry: the timer is cleared and no socket is open, so no "end" will come.
  const idle = client.status === "reconnecting";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = new Promise<void>((resolve) => {
    client.once("end", () => resolve());
    timer = setTimeout(resolve, 2000);
  });
  client.disconnect();
  if (!idle) await ended;
  clearTimeout(timer);
}

/**
 * Wraps `task` so that at most one run is going on and calls during a run share one more run
 * after it (what they asked for may have been read before their change).
 */
function coalesce(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const run = (): Promise<void> => {
    if (running) {
      return next ??= running.then(() => {
        next = undefined;
        return run();
      });
    }
    running = task().finally(() => running = undefined);
    return running;
  };
  return run;
}

/** The users of a hash; invalid entries are left out with a warning. */
function parseUsers(raw: ReadonlyMap<string, string>, logger: Logger): Map<string, FleetUser> {
  const users = new Map<string, FleetUser>();
  for (const [name, value] of raw) {
    const user = parseUser(value);
    if (user === undefined) logger.warn(`fleet: user "${name}" ignored: invalid entry`);
    else users.set(name, user);
  }
  return users;
}

/** The listeners of the `listeners` hash: objects by port (the node checks them further). */
function parseListeners(raw: ReadonlyMap<string, string>): Map<number, FleetListener> {
  const listeners = new Map<number, FleetListener>();
  for (const [port, value] of raw) {
    try {
      const spec = JSON.parse(value) as unknown;
      if (typeof spec === "object" && spec !== null && !Array.isArray(spec)) {
        listeners.set(Number(port), spec as FleetListener);
      }
    } catch {
      // Not JSON: not ours; left out like an invalid user.
    }
  }
  return listeners;
}

function parseUser(value: string): FleetUser | undefined {
  try {
    return checkedUser(JSON.parse(value));
  } catch {
    return undefined;
  }
}

/** `data` as a user every node accepts (only the fields they know), or undefined. */
function checkedUser(data: unknown): FleetUser | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const { password, dataLimit, expiresAt, maxClientIps } = data as Record<string, unknown>;
  if (typeof password !== "string" || password === "") return undefined;
  if (dataLimit !== undefined && (typeof dataLimit !== "number" || !(dataLimit >= 0))) {
    return undefined;
  }
  if (expiresAt !== undefined && (typeof expiresAt !== "number" || !Number.isFinite(expiresAt))) {
    return undefined;
  }
  if (
    maxClientIps !== undefined &&
    (typeof maxClientIps !== "number" || !Number.isInteger(maxClientIps) || maxClientIps < 1)
  ) {
    return undefined;
  }
  return {
    password,
    ...(dataLimit === undefined ? {} : { dataLimit }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(maxClientIps === undefined ? {} : { maxClientIps }),
  };
}

function parseBeat(value: string): { boot: string; load: number; at: number } | undefined {
  try {
    const { boot, load, at } = JSON.parse(value) as Record<string, unknown>;
    if (typeof boot === "string" && typeof load === "number" && typeof at === "number") {
      return { boot, load, at };
    }
  } catch {
    // fall through: not a beat of ours
  }
  return undefined;
}

function base64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return base64Url(bytes);
}
