/**
 * A server process in a fleet: what ties the fleet's shared state (service/fleet.ts) to the
 * listeners this process runs (service/supervisor.ts).
 *
 * - **Users.** A multi-user listener's users are the fleet's list for its port. The config's
 *   users seed a list the fleet does not have yet (the first node of a new fleet, or a Redis
 *   that lost its data); from then on the fleet's list wins over the config, at start, on
 *   reload and on every change any node makes (pub/sub: milliseconds; a resync every 30 s
 *   catches what a lost message missed). While Redis is down the last list stays in force.
 * - **Management writes** (the SSM API's user changes, ss-manager `add`/`remove`) go to Redis
 *   first and apply here once Redis took them; other nodes follow through their watches. With
 *   Redis down they fail with `FleetUnavailableError` (the API answers 503, the manager `err`)
 *   rather than change one node only.
 * - **Accounting.** Once a second, each user's bytes since the last sample (TCP in every
 *   isolate, and UDP) go to `fleet.addBytes`; the fleet publishes them every 2 s and reads the
 *   other nodes' totals back.
 * - **Data limits across the fleet.** Once a second, a user whose fleet total reached their
 *   `dataLimit` is marked `refused` in the listener's config, which every isolate applies: new
 *   sessions are refused on every node (and live ones cut with `data_limit_cuts_live`). The
 *   overshoot is what the fleet carries for the user in about one sample and two flush
 *   intervals (≈ 5 s). Expiry (`expiresAt`) is checked by each session against its own clock.
 * - **Heartbeats** carry the node's live sessions; `view` lists the live nodes for the
 *   metrics and the status page.
 * @module
 */
import type { ServerConfig, ServerUser } from "../config/types.ts";
import type { AddRequest } from "../protocol/manager.ts";
import { FLEET_NODE_NAME } from "../config/load.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";
import {
  type Fleet,
  type FleetNode as LiveNode,
  type FleetStats,
  FleetUnavailableError,
  type FleetUser,
} from "./fleet.ts";
import type { RunningService } from "../relay/service.ts";
import type { ListenerEntry, ServerSupervisor } from "./supervisor.ts";

/** Why a user over their fleet data limit is refused (the session log's detail). */
export const FLEET_LIMIT_REASON = "user over its data limit across the fleet";

/** What the metrics and the status page show of the fleet. */
export interface FleetView {
  /** This node's name. */
  readonly node: string;
  readonly stats: FleetStats;
  /** Live nodes from their heartbeats (refreshed every few seconds; the last known while down). */
  readonly nodes: readonly LiveNode[];
}

export interface FleetNodeOptions {
  readonly fleet: Fleet;
  readonly supervisor: ServerSupervisor;
  /** Turns a fleet listener (an ss-manager `add` request) into a config; throws with the reason. */
  readonly buildListener: (spec: AddRequest) => ServerConfig;
  /** Throws, changing nothing, when a listener could not run `config` (a bad user key). */
  readonly checkConfig: (config: ServerConfig) => void;
  readonly logger: Logger;
  /** Byte counts and data limits are sampled this often. Default 1000 ms. */
  readonly sampleIntervalMs?: number;
  /** The list of live nodes is read this often. Default 5000 ms. */
  readonly viewIntervalMs?: number;
}

export class FleetNode {
  readonly #fleet: Fleet;
  readonly #supervisor: ServerSupervisor;
  readonly #buildListener: (spec: AddRequest) => ServerConfig;
  readonly #checkConfig: (config: ServerConfig) => void;
  readonly #logger: Logger;
  readonly #sampleMs: number;
  readonly #viewMs: number;
  /** The fleet's users per port, as last loaded or written. */
  readonly #users = new Map<number, ReadonlyMap<string, FleetUser>>();
  readonly #watches = new Map<number, Disposable>();
  /**
   * Bytes each counter held at the last sample, keyed by the counter object itself (a user's
   * TCP or UDP stats on one listener): a user removed and added back keeps their counter, so
   * nothing is counted twice; a replaced listener brings new counters, which start at zero.
   */
  #counted = new WeakMap<object, number>();
  /** Every listener sampled, retired ones included until their last session has ended. */
  readonly #services = new Set<RunningService>();
  /** Services that have ended: sampled once more, then forgotten. */
  readonly #ended = new Set<RunningService>();
  /** Fleet listeners running here, by port: the spec's JSON. */
  readonly #listeners = new Map<number, string>();
  #listenerSync: Promise<void> = Promise.resolve();
  #listenersWatch: Disposable | undefined;
  #nodes: readonly LiveNode[] = [];
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  /** Users with a data limit at the last tick (their fleet totals are refreshed). */
  #limited = new Set<string>();

  constructor(options: FleetNodeOptions) {
    this.#fleet = options.fleet;
    this.#supervisor = options.supervisor;
    this.#buildListener = options.buildListener;
    this.#checkConfig = options.checkConfig;
    this.#logger = options.logger;
    this.#sampleMs = options.sampleIntervalMs ?? 1000;
    this.#viewMs = options.viewIntervalMs ?? 5000;
  }

  /**
   * Before the listeners start: loads the fleet's users of every multi-user listener in
   * `configs` (seeding an empty list with the config's), and makes the supervisor take users
   * from the fleet from now on. With Redis down the configs' users start, and the fleet's
   * replace them once it is back.
   */
  async prepare(configs: readonly ServerConfig[]): Promise<void> {
    for (const config of configs) {
      if (config.users === undefined) continue;
      try {
        let users = await this.#fleet.loadUsers(config.port);
        if (users.size === 0) {
          await this.#seed(config.port, config.users);
          users = fleetUsers(config.users);
        }
        this.#users.set(config.port, users);
      } catch (error) {
        this.#logger.warn(
          `fleet: users of port ${config.port} not loaded (${errorMessage(error)}): the ` +
            `config's users serve until Redis answers`,
        );
      }
    }
    this.#supervisor.usersFrom((config) => this.#usersFor(config));
  }

  /**
   * Once the listeners run: takes the first byte sample (counts restored from a state file are
   * not the fleet's news), watches users and listeners, starts the timers.
   */
  start(): void {
    this.#sample(true);
    this.#watchListed();
    this.#listenersWatch = this.#fleet.watchListeners((specs) => {
      this.#listenerSync = this.#listenerSync.then(() => this.#syncListeners(specs)).catch(
        (error) => this.#logger.error(`fleet: listeners not synced: ${errorMessage(error)}`),
      );
    });
    const every = (ms: number, task: () => unknown) => {
      const timer = setInterval(task, ms);
      Deno.unrefTimer(timer);
      this.#timers.push(timer);
    };
    every(this.#sampleMs, () => this.#tick());
    every(this.#viewMs, () => this.#refreshView());
    this.#refreshView();
  }

  /** The fleet as the metrics and the status page show it. */
  get view(): FleetView {
    return { node: this.#fleet.node, stats: this.#fleet.stats, nodes: this.#nodes };
  }

  // ------------------------------------------------------------------------------------------
  // Management writes

  /**
   * Adds or replaces `user` on `entry`'s listener across the fleet, then here. Throws
   * `FleetUnavailableError` (nothing changed) when Redis is down, a `RangeError` for a bad key.
   */
  async putUser(entry: ListenerEntry, user: ServerUser): Promise<void> {
    const port = entry.config.port;
    const current = new Map(this.#users.get(port) ?? fleetUsers(entry.config.users ?? []));
    const stored = toFleetUser(user);
    current.set(user.name, stored);
    // Checked here first: a key the listener cannot use must not reach the other nodes.
    this.#apply(entry, current, true);
    await this.#fleet.putUser(port, user.name, stored);
    // Onto the list as it is now: a change from elsewhere may have arrived meanwhile.
    const latest = new Map(this.#users.get(port) ?? current);
    latest.set(user.name, stored);
    this.#apply(entry, latest);
  }

  /** Removes user `name` of `entry`'s listener across the fleet, then here. */
  async deleteUser(entry: ListenerEntry, name: string): Promise<void> {
    const port = entry.config.port;
    const current = new Map(this.#users.get(port) ?? fleetUsers(entry.config.users ?? []));
    current.delete(name);
    await this.#fleet.deleteUser(port, name);
    const latest = new Map(this.#users.get(port) ?? current);
    latest.delete(name);
    this.#apply(entry, latest);
  }

  /**
   * Starts `config` here for the ss-manager `add` `spec`, then records it in the fleet so that
   * every node runs it; when Redis refuses, the listener is removed here again and the error
   * thrown.
   */
  async addListener(spec: AddRequest, config: ServerConfig): Promise<void> {
    // Down already: refuse before replacing anything that runs on the port.
    if (this.#fleet.state !== "up") {
      throw new FleetUnavailableError("Redis is unreachable: the listener was not added");
    }
    await this.#supervisor.add(config);
    try {
      await this.#fleet.putListener(config.port, { ...spec });
    } catch (error) {
      await this.#supervisor.remove(config.port);
      throw error;
    }
    this.#listeners.set(config.port, JSON.stringify({ ...spec }));
  }

  /** Removes the listener on `port` from the fleet, then here. */
  async removeListener(port: number): Promise<boolean> {
    const known = await this.#fleet.deleteListener(port);
    this.#listeners.delete(port);
    return (await this.#supervisor.remove(port)) || known;
  }

  /**
   * A config reload in a fleet: the users the file added, changed or removed since `previous`
   * go to Redis (so to every node), as if made through the API. Only the differences: a node
   * reloading an old file does not undo what others did since. When Redis refuses, the changes
   * are logged as not applied (the fleet's list stays in force).
   */
  async applyConfigUsers(
    previous: readonly ServerConfig[],
    next: readonly ServerConfig[],
  ): Promise<boolean> {
    let allSent = true;
    const before = new Map(previous.filter((c) => c.users).map((c) => [c.port, c.users!]));
    for (const config of next) {
      if (config.users === undefined) continue;
      const old = new Map((before.get(config.port) ?? []).map((u) => [u.name, toFleetUser(u)]));
      const now = fleetUsers(config.users);
      const changed = [...now].filter(([name, user]) =>
        JSON.stringify(old.get(name)) !== JSON.stringify(user)
      );
      const removed = [...old.keys()].filter((name) => !now.has(name));
      if (changed.length === 0 && removed.length === 0) continue;
      const current = new Map(this.#users.get(config.port) ?? []);
      try {
        // Checked first, as the API does: a key the listener cannot use changes nothing.
        const trial = new Map(current);
        changed.forEach(([name, user]) => trial.set(name, user));
        removed.forEach((name) => trial.delete(name));
        this.#checkConfig({
          ...config,
          users: [...trial].map(([name, user]) => ({ name, ...user })),
        });
        for (const [name, user] of changed) await this.#fleet.putUser(config.port, name, user);
        for (const name of removed) await this.#fleet.deleteUser(config.port, name);
        const latest = new Map(this.#users.get(config.port) ?? trial);
        changed.forEach(([name, user]) => latest.set(name, user));
        removed.forEach((name) => latest.delete(name));
        this.#users.set(config.port, latest);
        this.#logger.info(
          `fleet: port ${config.port}: the config's user changes sent to the fleet (` +
            [
              changed.length ? `changed: ${changed.map(([name]) => name).join(", ")}` : "",
              removed.length ? `removed: ${removed.join(", ")}` : "",
            ].filter(Boolean).join("; ") + ")",
        );
      } catch (error) {
        allSent = false;
        this.#logger.warn(
          `fleet: port ${config.port}: the config's user changes did not reach the fleet, ` +
            `not applied (sent again at the next reload): ${errorMessage(error)}`,
        );
      }
    }
    return allSent;
  }

  /** The API is about to zero the counters: what they hold beyond the last sample goes first. */
  countersClearing(): void {
    this.#sample(false);
  }

  /**
   * Stops the timers and the watches and takes the last sample (call it once the listeners
   * have closed, so that their last bytes count; the fleet itself is closed by its owner).
   */
  close(): void {
    this.#timers.forEach(clearInterval);
    this.#timers.length = 0;
    this.#sample(false);
    for (const watch of this.#watches.values()) watch[Symbol.dispose]();
    this.#watches.clear();
    this.#listenersWatch?.[Symbol.dispose]();
  }

  // ------------------------------------------------------------------------------------------
  // Users

  /**
   * The users `config`'s listener runs with: the fleet's (`fleet`, by default the ones known for
   * its port) or else its own, with refusals marked.
   */
  #usersFor(
    config: ServerConfig,
    fleet: ReadonlyMap<string, FleetUser> | undefined = this.#users.get(config.port),
  ): ServerUser[] | undefined {
    if (config.users === undefined) return undefined;
    const base: ServerUser[] = fleet
      ? [...fleet].map(([name, user]) => ({ name, ...user }))
      : config.users.map(({ refused: _, ...user }) => user);
    return base.map((user) => {
      const over = user.dataLimit !== undefined &&
        this.#fleet.knownUsage(user.name) >= user.dataLimit;
      return over ? { ...user, refused: FLEET_LIMIT_REASON } : user;
    });
  }

  /**
   * Runs `users` on `entry`'s listener if they differ from what it runs (`dryRun`: only
   * checks that the listener would take them). Throws for a key the listener cannot use.
   */
  #apply(entry: ListenerEntry, users: ReadonlyMap<string, FleetUser>, dryRun = false): void {
    const next = this.#usersFor(entry.config, users)!;
    if (dryRun) return this.#checkConfig({ ...entry.config, users: next });
    this.#users.set(entry.config.port, users);
    if (JSON.stringify(next) === JSON.stringify(entry.config.users)) return;
    this.#supervisor.updateUsers(entry, next, "fleet");
  }

  async #seed(port: number, users: readonly ServerUser[]): Promise<void> {
    for (const user of users) await this.#fleet.putUser(port, user.name, toFleetUser(user));
    this.#logger.info(`fleet: seeded the users of port ${port} from the config (${users.length})`);
  }

  /** Watches the users of every multi-user listener running, and stops watching gone ones. */
  #watchListed(): void {
    const ports = new Set(
      this.#supervisor.listeners.filter((e) => e.config.users).map((e) => e.config.port),
    );
    for (const [port, watch] of this.#watches) {
      if (ports.has(port)) continue;
      watch[Symbol.dispose]();
      this.#watches.delete(port);
      this.#users.delete(port);
    }
    for (const port of ports) {
      if (this.#watches.has(port)) continue;
      this.#watches.set(
        port,
        this.#fleet.watchUsers(port, (users) => this.#usersChanged(port, users)),
      );
    }
  }

  #usersChanged(port: number, users: ReadonlyMap<string, FleetUser>): void {
    const entry = this.#supervisor.listeners.find((e) => e.config.port === port && e.config.users);
    if (entry === undefined) return;
    if (users.size === 0) {
      if (this.#users.has(port)) {
        // Emptied on purpose (a panel) or every entry invalid: nobody would be let in. A Redis
        // that lost its data is told apart by its epoch, and re-filled by the fleet itself.
        this.#logger.warn(
          `fleet: the fleet lists no valid user for port ${port}: the running users stay`,
        );
        return;
      }
      // The first list this node hears of, and empty: the fleet never had one. Ours seeds it.
      this.#seed(port, entry.config.users ?? []).catch((error) =>
        this.#logger.warn(`fleet: users of port ${port} not seeded: ${errorMessage(error)}`)
      );
      return;
    }
    try {
      this.#apply(entry, users);
    } catch (error) {
      this.#logger.error(
        `fleet: the fleet's users of port ${port} not applied, the running ones stay: ` +
          errorMessage(error),
      );
    }
  }

  // ------------------------------------------------------------------------------------------
  // Listeners added through ss-manager on any node

  async #syncListeners(specs: ReadonlyMap<number, Readonly<Record<string, unknown>>>) {
    for (const [port, spec] of specs) {
      const json = JSON.stringify(spec);
      if (this.#listeners.get(port) === json) continue;
      this.#listeners.set(port, json);
      try {
        await this.#supervisor.add(this.#buildListener(spec as unknown as AddRequest));
      } catch (error) {
        this.#logger.warn(`fleet: listener on port ${port} not started: ${errorMessage(error)}`);
      }
    }
    for (const port of [...this.#listeners.keys()]) {
      if (specs.has(port)) continue;
      this.#listeners.delete(port);
      try {
        await this.#supervisor.remove(port);
      } catch (error) {
        this.#logger.warn(`fleet: listener on port ${port} not removed: ${errorMessage(error)}`);
      }
    }
    this.#watchListed();
  }

  // ------------------------------------------------------------------------------------------
  // Sampling

  #tick(): void {
    const counted = this.#sample(false);
    this.#watchListed();
    // Only users with a data limit here need their fleet total read back at each flush.
    const limited = new Set(
      this.#supervisor.listeners.flatMap((e) => e.config.users ?? [])
        .filter((u) => u.dataLimit !== undefined).map((u) => u.name),
    );
    for (const name of [...this.#limited, ...counted]) {
      if (!limited.has(name)) this.#fleet.untrack(name);
    }
    this.#limited = limited;
    let live = 0;
    for (const entry of this.#supervisor.listeners) {
      live += entry.service.stats.active;
      if (entry.config.users === undefined) continue;
      const next = this.#usersFor(entry.config)!;
      if (JSON.stringify(next) === JSON.stringify(entry.config.users)) continue;
      try {
        this.#supervisor.updateUsers(entry, next, "fleet");
      } catch (error) {
        this.#logger.error(`fleet: users of port ${entry.config.port}: ${errorMessage(error)}`);
      }
    }
    this.#fleet.reportLoad(live);
  }

  /**
   * Hands the bytes each user moved since the last sample to the fleet, from every listener
   * running or retired (until its last session ended), and every user with a counter there
   * (removed ones too: their last bytes count). `baseline`: only records where the counters
   * stand. A counter that went down was zeroed (the API's `clear`): what it holds now is new.
   */
  #sample(baseline: boolean): Set<string> {
    const users = new Set<string>();
    for (const { service } of this.#supervisor.listeners) {
      if (this.#services.has(service)) continue;
      this.#services.add(service);
      service.closed.then(() => this.#ended.add(service), () => this.#ended.add(service));
    }
    for (const service of this.#services) {
      const byUser = new Map<string, number>();
      const take = (name: string, counter: { bytesUplink: number; bytesDownlink: number }) => {
        const now = counter.bytesUplink + counter.bytesDownlink;
        const before = this.#counted.get(counter) ?? 0;
        this.#counted.set(counter, now);
        const fresh = now >= before ? now - before : now;
        if (fresh > 0) byUser.set(name, (byUser.get(name) ?? 0) + fresh);
      };
      for (const [name, counter] of Object.entries(service.stats.users)) take(name, counter);
      for (const [name, counter] of Object.entries(service.udpStats?.users ?? {})) {
        take(name, counter);
      }
      if (!baseline) {
        byUser.forEach((bytes, name) => {
          this.#fleet.addBytes(name, bytes);
          users.add(name);
        });
      }
      if (this.#ended.has(service)) {
        this.#services.delete(service);
        this.#ended.delete(service);
      }
    }
    return users;
  }

  async #refreshView(): Promise<void> {
    if (this.#fleet.state !== "up") return;
    try {
      this.#nodes = await this.#fleet.nodes();
    } catch (error) {
      this.#logger.debug(`fleet: node list not read: ${errorMessage(error)}`);
    }
  }
}

/**
 * A node name when the config gives none: the host's name, which stays the same across
 * restarts (each name keeps one usage field per user in Redis), read from /etc/hostname or
 * asked of the system when allowed; else a random one, with a warning.
 */
export function defaultNodeName(logger: Logger): string {
  let host = "";
  try {
    host = Deno.readTextFileSync("/etc/hostname").trim();
  } catch {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
      host = Deno.hostname();
    }
  }
  const name = host.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
  if (FLEET_NODE_NAME.test(name)) return name;
  const random = `node-${crypto.randomUUID().slice(0, 8)}`;
  logger.warn(
    `fleet: no host name to name this node after: "${random}" (set fleet.node: with a new name ` +
      `at every start, each user's usage record in Redis grows by one field per start)`,
  );
  return random;
}

function fleetUsers(users: readonly ServerUser[]): Map<string, FleetUser> {
  return new Map(users.map((user) => [user.name, toFleetUser(user)]));
}

/** A config's user as the fleet stores it: everything but the name and run-time state. */
function toFleetUser({ name: _, refused: __, ...user }: ServerUser): FleetUser {
  return user;
}
