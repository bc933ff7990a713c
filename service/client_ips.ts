/**
 * `max_client_ips`: how many devices (client IP addresses) one user may connect from. An IP
 * counts for a user from their session's start until `client_ip_window` seconds after the last
 * session from it started; a session from a new IP while the user already has `max` is refused.
 * A device in use opens sessions all the time, so it keeps its place; one put away frees it
 * after the window.
 *
 * One answer per process (`ClientIpGate`): the main isolate keeps the window, worker isolates
 * ask it by message (service/workers.ts), and in a fleet it asks Redis first, so the limit holds
 * across nodes; with Redis down the node's own window decides.
 * @module
 */

/** Decides whether a user may start a session from an IP. */
export interface ClientIpGate {
  admit(user: string, ip: string, max: number): Promise<boolean>;
}

/** Default `client_ip_window`: 5 minutes. */
export const DEFAULT_CLIENT_IP_WINDOW_MS = 300_000;

/** Admissions between two sweeps of every user (see `ClientIpWindow`). */
const SWEEP_EVERY = 1024;

/**
 * A user's IPs within the window, in this process. Memory: at most `max` IPs per limited user
 * (a refused IP is not recorded), and users whose IPs all left the window are dropped at the
 * next sweep (every 1024 admissions), so users removed from the config do not stay.
 */
export class ClientIpWindow {
  readonly #users = new Map<string, Map<string, number>>();
  #sinceSweep = 0;
  readonly windowMs: number;
  readonly #now: () => number;

  constructor(windowMs = DEFAULT_CLIENT_IP_WINDOW_MS, now: () => number = Date.now) {
    this.windowMs = windowMs;
    this.#now = now;
  }

  /** Whether `user` may start a session from `ip`; records the IP when admitted. */
  admit(user: string, ip: string, max: number): boolean {
    const now = this.#now();
    if (++this.#sinceSweep >= SWEEP_EVERY) this.#sweep(now);
    let ips = this.#users.get(user);
    if (ips === undefined) this.#users.set(user, ips = new Map());
    for (const [known, at] of ips) {
      if (now - at >= this.windowMs) ips.delete(known);
    }
    if (!ips.has(ip) && ips.size >= max) return false;
    ips.set(ip, now);
    return true;
  }

  #sweep(now: number): void {
    this.#sinceSweep = 0;
    for (const [user, ips] of this.#users) {
      for (const [known, at] of ips) if (now - at >= this.windowMs) ips.delete(known);
      if (ips.size === 0) this.#users.delete(user);
    }
  }

  /** Users with an IP recorded (for tests). */
  get users(): number {
    return this.#users.size;
  }

  /** IPs recorded for `user` now (for tests and logs). */
  count(user: string): number {
    return this.#users.get(user)?.size ?? 0;
  }
}

/** The process's own window as a gate. */
export function localGate(window: ClientIpWindow): ClientIpGate {
  return { admit: (user, ip, max) => Promise.resolve(window.admit(user, ip, max)) };
}

/**
 * The fleet's answer, or the local window's when the fleet has none (Redis down or slow). An
 * IP the fleet admits is recorded locally too, so an outage starts from what was known.
 */
export function fleetGate(
  fleet: {
    admitClientIp(user: string, ip: string, max: number, windowMs: number): Promise<
      boolean | undefined
    >;
  },
  window: ClientIpWindow,
): ClientIpGate {
  return {
    async admit(user, ip, max) {
      const answer = await fleet.admitClientIp(user, ip, max, window.windowMs).catch(() =>
        undefined
      );
      if (answer === undefined) return window.admit(user, ip, max);
      if (answer) window.admit(user, ip, Number.MAX_SAFE_INTEGER);
      return answer;
    },
  };
}
