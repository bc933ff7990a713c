/**
 * One listener's TCP counters when it runs in several isolates (service/workers.ts): every
 * isolate counts into its own row of a `SharedArrayBuffer`, and the main isolate's `totals` sums
 * the rows when read. A metrics scrape, an API call, the status page or the state file therefore
 * sees every worker's sessions the moment they are counted, with no message in between.
 *
 * ```
 * service memory: row i = isolate i, one Float64 per field:
 *   [ statuses (STATUSES order) | active | bytesUplink | bytesDownlink | accept peer | resource ]
 * user memory (one buffer per user, made by the main isolate when the user appears):
 *   row 0 … n−1   isolate i: sessions | bytesUplink | bytesDownlink | lastSeen
 *   row n         adjustment, written by the main isolate only (see below)
 *   row n + 1     the user's UDP bytes, copied there each second by the main isolate (`mirrorUdp`)
 * ```
 *
 * Each row has one writer, the isolate it belongs to, so `+=` on it is exact; readers see a value
 * at most one update old, and two fields read one after the other (a scrape's families) may
 * disagree by a session that ended in between. Assigning a total (the API clearing a user, the state file restoring
 * one) writes the adjustment row so that the sum reads the value assigned: no isolate's own
 * row is touched. Data limits read the sum in every isolate (`userBytes`), the UDP part from the
 * mirror in workers, which run no UDP (at most a second old).
 * @module
 */
import { type SessionStatus, STATUSES } from "../protocol/errors.ts";
import type { LoopErrorCounts } from "../relay/loop_errors.ts";
import type { ServiceStats, UserStats } from "../relay/service.ts";
import type { UdpStats } from "../relay/udp_stats.ts";

const ACTIVE = STATUSES.length;
const BYTES_UP = ACTIVE + 1;
const BYTES_DOWN = ACTIVE + 2;
const ACCEPT_PEER = ACTIVE + 3;
const ACCEPT_RESOURCE = ACTIVE + 4;
const SERVICE_FIELDS = ACTIVE + 5;

const USER_UP = 1;
const USER_DOWN = 2;
const LAST_SEEN = 3;
const USER_FIELDS = 4;
/** The `UserStats` fields in row order (sessions is field 0). */
const USER_FIELD_NAMES = ["sessions", "bytesUplink", "bytesDownlink", "lastSeen"] as const;

/** The shared memory of one listener's counters: what the main isolate posts to workers. */
export interface CountersMemory {
  /** Isolates counting (rows of each buffer, adjustment and mirror rows aside). */
  readonly isolates: number;
  readonly service: SharedArrayBuffer;
  /** Per user name. */
  readonly users: Record<string, SharedArrayBuffer>;
}

/** New, zeroed memory for `isolates` isolates (the main one and its workers). */
export function createCountersMemory(isolates: number): CountersMemory {
  return {
    isolates,
    service: new SharedArrayBuffer(isolates * SERVICE_FIELDS * 8),
    users: Object.create(null),
  };
}

/**
 * One isolate's view of a listener's counters: its own row to count into (`stats`, `user`),
 * the sums across isolates to read (`totals`, `userBytes`).
 */
export class ListenerCounters {
  /** This isolate's row, for its accept loop (`serveConnections`'s `stats`). */
  readonly stats: ServiceStats;
  /** Every isolate's rows summed; `users` assignable (adjustment row). */
  readonly totals: ServiceStats;
  readonly #memory: CountersMemory;
  readonly #row: number;
  readonly #service: Float64Array;
  readonly #users = new Map<string, Float64Array>();
  readonly #ownUsers: Record<string, UserStats>;
  readonly #totalUsers: Record<string, UserStats>;

  /** `row`: this isolate's index, 0 for the main one. */
  constructor(memory: CountersMemory, row: number) {
    this.#memory = memory;
    this.#row = row;
    this.#service = new Float64Array(memory.service);
    this.#ownUsers = Object.create(null);
    this.#totalUsers = Object.create(null);
    this.stats = rowStats(this.#service, row * SERVICE_FIELDS, this.#ownUsers);
    this.totals = totalStats(this.#service, memory.isolates, this.#totalUsers);
    this.adopt(memory.users);
  }

  /** The memory to post to a worker (users added since included). */
  get memory(): CountersMemory {
    return this.#memory;
  }

  /**
   * This isolate's counters of user `name`. The main isolate makes the user's memory the first
   * time; a worker gets it with the config that names the user (`adopt`).
   */
  user(name: string): UserStats {
    let own = this.#ownUsers[name];
    if (own) return own;
    let buffer = this.#memory.users[name];
    if (!buffer) {
      buffer = new SharedArrayBuffer((this.#memory.isolates + 2) * USER_FIELDS * 8);
      this.#memory.users[name] = buffer;
    }
    const values = new Float64Array(buffer);
    this.#users.set(name, values);
    own = rowUser(values, this.#row * USER_FIELDS);
    this.#ownUsers[name] = own;
    this.#totalUsers[name] = totalUser(values, this.#memory.isolates);
    return own;
  }

  /** Takes the user memories the main isolate made (a worker, before starting or updating). */
  adopt(users: Record<string, SharedArrayBuffer>): void {
    for (const [name, buffer] of Object.entries(users)) {
      if (this.#memory.users[name] !== buffer) this.#memory.users[name] = buffer;
      if (!this.#ownUsers[name]) this.user(name);
    }
  }

  /**
   * Bytes `name` moved over TCP in every isolate, adjustments included; `withUdp` adds the UDP
   * bytes the main isolate last copied (for workers, which see no UDP of their own).
   */
  userBytes(name: string, withUdp: boolean): number {
    const values = this.#users.get(name);
    if (!values) return 0;
    const rows = this.#memory.isolates + 1;
    let sum = 0;
    for (let row = 0; row < rows; row++) {
      sum += values[row * USER_FIELDS + USER_UP]! + values[row * USER_FIELDS + USER_DOWN]!;
    }
    if (withUdp) {
      const at = rows * USER_FIELDS;
      sum += values[at + USER_UP]! + values[at + USER_DOWN]!;
    }
    return sum;
  }

  /** Copies each user's UDP bytes into their mirror row (main isolate, once a second). */
  mirrorUdp(udp: UdpStats): void {
    const at = (this.#memory.isolates + 1) * USER_FIELDS;
    for (const [name, values] of this.#users) {
      const stats = udp.users[name];
      values[at + USER_UP] = stats?.bytesUplink ?? 0;
      values[at + USER_DOWN] = stats?.bytesDownlink ?? 0;
    }
  }

  /** TCP connections accepted by each isolate (ended and live), for metrics. */
  perIsolate(): number[] {
    return Array.from({ length: this.#memory.isolates }, (_, row) => {
      let sum = 0;
      for (let field = 0; field <= ACTIVE; field++) {
        sum += this.#service[row * SERVICE_FIELDS + field]!;
      }
      return sum;
    });
  }

  /** Zeroes the live count of isolate `row`, which is gone (its sessions went with it). */
  forgetLive(row: number): void {
    this.#service[row * SERVICE_FIELDS + ACTIVE] = 0;
  }
}

/** A `ServiceStats` over one row. */
function rowStats(
  values: Float64Array,
  at: number,
  users: Record<string, UserStats>,
): ServiceStats {
  const field = (offset: number) => ({
    get: () => values[at + offset]!,
    set: (value: number) => {
      values[at + offset] = value;
    },
    enumerable: true,
  });
  return new RowStats(values, at, users, {
    statuses: Object.defineProperties(
      {},
      Object.fromEntries(STATUSES.map((status, i) => [status, field(i)])),
    ) as Record<SessionStatus, number>,
    acceptErrors: Object.defineProperties({}, {
      peer: field(ACCEPT_PEER),
      resource: field(ACCEPT_RESOURCE),
    }) as LoopErrorCounts,
  });
}

/** Class accessors for the fields the relay touches per chunk: they stay fast (inline caches). */
class RowStats implements ServiceStats {
  readonly statuses: Record<SessionStatus, number>;
  readonly acceptErrors: LoopErrorCounts;
  readonly users: Record<string, UserStats>;
  readonly #values: Float64Array;
  readonly #at: number;

  constructor(
    values: Float64Array,
    at: number,
    users: Record<string, UserStats>,
    parts: { statuses: Record<SessionStatus, number>; acceptErrors: LoopErrorCounts },
  ) {
    this.#values = values;
    this.#at = at;
    this.users = users;
    this.statuses = parts.statuses;
    this.acceptErrors = parts.acceptErrors;
  }

  get active(): number {
    return this.#values[this.#at + ACTIVE]!;
  }
  set active(value: number) {
    this.#values[this.#at + ACTIVE] = value;
  }
  get bytesUplink(): number {
    return this.#values[this.#at + BYTES_UP]!;
  }
  set bytesUplink(value: number) {
    this.#values[this.#at + BYTES_UP] = value;
  }
  get bytesDownlink(): number {
    return this.#values[this.#at + BYTES_DOWN]!;
  }
  set bytesDownlink(value: number) {
    this.#values[this.#at + BYTES_DOWN] = value;
  }
}

/** A read-only `ServiceStats` summing `isolates` rows. */
function totalStats(
  values: Float64Array,
  isolates: number,
  users: Record<string, UserStats>,
): ServiceStats {
  const sum = (offset: number) => {
    let total = 0;
    for (let row = 0; row < isolates; row++) total += values[row * SERVICE_FIELDS + offset]!;
    return total;
  };
  const field = (offset: number) => ({ get: () => sum(offset), enumerable: true });
  return Object.defineProperties({ users }, {
    statuses: {
      value: Object.defineProperties(
        {},
        Object.fromEntries(STATUSES.map((status, i) => [status, field(i)])),
      ),
      enumerable: true,
    },
    acceptErrors: {
      value: Object.defineProperties({}, {
        peer: field(ACCEPT_PEER),
        resource: field(ACCEPT_RESOURCE),
      }),
      enumerable: true,
    },
    active: field(ACTIVE),
    bytesUplink: field(BYTES_UP),
    bytesDownlink: field(BYTES_DOWN),
  }) as ServiceStats;
}

/** A user's row `at`, as the `UserStats` the server counts into. */
function rowUser(values: Float64Array, at: number): UserStats {
  return Object.defineProperties(
    {},
    Object.fromEntries(USER_FIELD_NAMES.map((name, i) => [name, {
      get: () => values[at + i]!,
      set: (value: number) => {
        values[at + i] = value;
      },
      enumerable: true,
    }])),
  ) as UserStats;
}

/**
 * A user's totals: the isolates' rows plus the adjustment row (the latest `lastSeen` of them).
 * Assigning one writes the adjustment so that the total reads what was assigned.
 */
function totalUser(values: Float64Array, isolates: number): UserStats {
  const adjust = isolates * USER_FIELDS;
  const isolatesSum = (i: number) => {
    let total = 0;
    for (let row = 0; row < isolates; row++) total += values[row * USER_FIELDS + i]!;
    return total;
  };
  const latest = () => {
    let last = values[adjust + LAST_SEEN]!;
    for (let row = 0; row < isolates; row++) {
      last = Math.max(last, values[row * USER_FIELDS + LAST_SEEN]!);
    }
    return last;
  };
  return Object.defineProperties(
    {},
    Object.fromEntries(USER_FIELD_NAMES.map((name, i) => [
      name,
      i === LAST_SEEN
        ? {
          get: latest,
          set: (value: number) => {
            values[adjust + LAST_SEEN] = value;
          },
          enumerable: true,
        }
        : {
          get: () => isolatesSum(i) + values[adjust + i]!,
          set: (value: number) => {
            values[adjust + i] = value - isolatesSum(i);
          },
          enumerable: true,
        },
    ])),
  ) as UserStats;
}
