/**
 * The server role's listeners, keyed by `address:port`, and the reload that diffs a new config
 * against them:
 *
 * - a listener that disappeared is closed (its sessions get the shutdown grace period);
 * - a new one is started;
 * - one whose address, port, mode and method are unchanged is updated in place (keys, users,
 *   timeouts, ACL): no session is dropped, except those of users removed or rekeyed;
 * - one whose mode or method changed is replaced: the old stops accepting and its live sessions
 *   run to their end (`retire`), the new one binds the same port.
 *
 * Each change is one log line. A listener that fails to start is logged and the rest goes on.
 *
 * In a fleet (service/fleet_node.ts) a multi-user listener's users come from the fleet, not
 * from the config: `usersFrom` puts them into every config before it is started or applied,
 * so a reload cannot bring back (and cut the sessions of) a list the fleet has replaced.
 * @module
 */
import type { ServerConfig } from "../config/types.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";
import type { RunningService } from "../relay/service.ts";

/** What the supervisor needs of a started server listener (server.ts's `ServerService`). */
export interface SupervisedServer extends RunningService {
  update(next: ServerConfig): string[];
}

export interface ListenerEntry {
  config: ServerConfig;
  service: SupervisedServer;
  /** `manager`: added over the ss-manager API; a config reload leaves it alone. */
  origin: "config" | "manager";
}

export function listenerKey(config: Pick<ServerConfig, "address" | "port">): string {
  return config.address.includes(":")
    ? `[${config.address}]:${config.port}`
    : `${config.address}:${config.port}`;
}

export class ServerSupervisor {
  readonly #listeners = new Map<string, ListenerEntry>();
  /** Listeners replaced by a reload whose sessions are still running. */
  readonly #retired = new Set<Promise<void>>();
  readonly #start: (config: ServerConfig) => Promise<SupervisedServer>;
  readonly #canUpdate: (current: ServerConfig, next: ServerConfig) => boolean;
  readonly #logger: Logger;
  #usersFrom: ((config: ServerConfig) => ServerConfig["users"]) | undefined;

  constructor(options: {
    start: (config: ServerConfig) => Promise<SupervisedServer>;
    canUpdate: (current: ServerConfig, next: ServerConfig) => boolean;
    logger: Logger;
  }) {
    this.#start = options.start;
    this.#canUpdate = options.canUpdate;
    this.#logger = options.logger;
  }

  /**
   * Where multi-user listeners' users come from from now on (fleet mode): given a config, the
   * users it should run with (the config's own when the answer is undefined). Applied to every
   * config started or reloaded, and to the API's user changes.
   */
  usersFrom(source: (config: ServerConfig) => ServerConfig["users"]): void {
    this.#usersFrom = source;
  }

  #effective(config: ServerConfig): ServerConfig {
    if (this.#usersFrom === undefined || config.users === undefined) return config;
    const users = this.#usersFrom(config);
    return users === undefined ? config : { ...config, users };
  }

  /** The listeners running now. */
  get listeners(): ListenerEntry[] {
    return [...this.#listeners.values()];
  }

  /**
   * Starts the first configs; throws (after closing what it started) if one fails, so a bad
   * first start is an error exit, not a half-running server.
   */
  async startAll(configs: readonly ServerConfig[]): Promise<void> {
    try {
      for (const given of configs) {
        const config = this.#effective(given);
        const service = await this.#start(config);
        this.#listeners.set(listenerKey(config), { config, service, origin: "config" });
      }
    } catch (error) {
      await this.closeAll();
      throw error;
    }
  }

  /** Applies a reloaded config; returns the change lines it logged. */
  async apply(configs: readonly ServerConfig[]): Promise<string[]> {
    const lines: string[] = [];
    const say = (line: string) => {
      lines.push(line);
      this.#logger.info(`reload: ${line}`);
    };
    const wanted = new Map(configs.map((config) => [listenerKey(config), this.#effective(config)]));
    for (const [key, entry] of this.#listeners) {
      if (wanted.has(key) || entry.origin === "manager") continue;
      this.#listeners.delete(key);
      await entry.service.close();
      say(`${key} removed`);
    }
    for (const [key, config] of wanted) {
      const entry = this.#listeners.get(key);
      if (entry && this.#canUpdate(entry.config, config)) {
        let changes: string[];
        try {
          changes = entry.service.update(config);
        } catch (error) {
          say(`${key} not updated: ${errorMessage(error)}`);
          continue;
        }
        entry.config = config;
        if (changes.length > 0) say(`${key} ${changes.join("; ")}`);
        continue;
      }
      if (entry) {
        // Free the port; the old sessions go on until they end.
        this.#listeners.delete(key);
        const { drained } = await entry.service.retire();
        this.#retired.add(drained);
        drained.finally(() => this.#retired.delete(drained));
      }
      try {
        const service = await this.#start(config);
        this.#listeners.set(key, { config, service, origin: "config" });
        say(entry ? `${key} replaced (${config.method}, ${config.mode})` : `${key} added`);
      } catch (error) {
        say(`${key} could not start: ${errorMessage(error)}`);
      }
    }
    return lines;
  }

  /**
   * Starts a listener for the ss-manager API (`add`): one already on its address and port is
   * replaced, as libev and rust do. Throws when it cannot start.
   */
  async add(given: ServerConfig): Promise<void> {
    const config = this.#effective(given);
    const key = listenerKey(config);
    const old = this.#listeners.get(key);
    if (old) {
      this.#listeners.delete(key);
      await old.service.close();
    }
    const service = await this.#start(config);
    this.#listeners.set(key, { config, service, origin: "manager" });
    this.#logger.info(`manager: ${key} ${old ? "replaced" : "added"} (${config.method})`);
  }

  /** Closes the listener on `port` (any address), for the ss-manager API (`remove`). */
  async remove(port: number): Promise<boolean> {
    const entries = [...this.#listeners].filter(([, entry]) => entry.config.port === port);
    for (const [key, entry] of entries) {
      this.#listeners.delete(key);
      await entry.service.close();
      this.#logger.info(`manager: ${key} removed`);
    }
    return entries.length > 0;
  }

  /**
   * Replaces the users of a running listener (the management API): applied in place, so only
   * the sessions of users removed or rekeyed end. Throws, changing nothing, for a bad key.
   */
  updateUsers(
    entry: ListenerEntry,
    users: ServerConfig["users"] & object,
    by: "api" | "fleet" = "api",
  ): void {
    const next = { ...entry.config, users };
    const changes = entry.service.update(next);
    entry.config = next;
    if (changes.length > 0) {
      this.#logger.info(`${by}: ${listenerKey(next)} ${changes.join("; ")}`);
    }
  }

  /** Closes every listener (each with its grace period) and waits for the retired ones. */
  async closeAll(): Promise<void> {
    const entries = [...this.#listeners.values()];
    this.#listeners.clear();
    await Promise.all(entries.map((entry) => entry.service.close()));
    await Promise.all([...this.#retired]);
  }
}
