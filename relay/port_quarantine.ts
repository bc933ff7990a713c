/**
 * Ports of association sockets closed a moment ago, kept out of new associations (one memory for
 * every datagram relay of the process: UDP runs in the main isolate only). A UDP socket
 * bound to port 0 gets a free port chosen at random, which may be the one an evicted or expired
 * association released a moment before; replies still on their way to that association (a DNS
 * answer, a game server's tick) would then reach the new one's client: another client's
 * datagrams. A flood of new sessions makes that likelier, since it both evicts the quietest
 * clients and opens socket after socket. The relay therefore records every port it closes for
 * `QUARANTINE_MS` and, when a new socket lands on one, binds again (keeping the refused socket
 * open until then, so the kernel cannot hand out the same port twice).
 *
 * Bounded: at most `MAX_QUARANTINED` ports (the oldest leave first) and `BIND_ATTEMPTS` binds per
 * socket, after which the last socket is used as it is; a flood that closes more ports than that
 * in `QUARANTINE_MS` weakens the protection, it never stops the relay.
 * @module
 */

/** How long a released port stays out of new associations. */
export const QUARANTINE_MS = 30_000;
/** Most ports remembered: 58 % of Linux's default ephemeral range (32768–60999). */
export const MAX_QUARANTINED = 16_384;
/** Binds tried for one socket before the last one is kept anyway. */
export const BIND_ATTEMPTS = 4;

/** Recently released ports, in the order they were released (all stay the same time). */
export class PortQuarantine {
  readonly #until = new Map<number, number>();
  readonly #ms: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(
    options: { ms?: number; max?: number; now?: () => number } = {},
  ) {
    this.#ms = options.ms ?? QUARANTINE_MS;
    this.#max = options.max ?? MAX_QUARANTINED;
    // Monotonic: a step of the wall clock must neither free every port nor keep them longer.
    this.#now = options.now ?? (() => performance.now());
  }

  /** Ports held now. */
  get size(): number {
    this.#expire();
    return this.#until.size;
  }

  /** Keeps `port` out of new sockets for the quarantine time, from now. */
  add(port: number): void {
    this.#until.delete(port);
    this.#until.set(port, this.#now() + this.#ms);
    if (this.#until.size > this.#max) this.#until.delete(this.#until.keys().next().value!);
  }

  has(port: number): boolean {
    this.#expire();
    return this.#until.has(port);
  }

  #expire(): void {
    const now = this.#now();
    for (const [port, until] of this.#until) {
      if (until > now) return;
      this.#until.delete(port);
    }
  }
}

/**
 * A socket from `bind` whose port is not in `quarantine`, or the last of `attempts` binds. The
 * refused sockets are closed once the choice is made. A bind that fails after a refusal (no
 * descriptors left, say) leaves the last refused socket as the answer: as good as no quarantine.
 */
export function bindOutside<S extends { readonly addr: Deno.NetAddr; close(): void }>(
  bind: () => S,
  quarantine: PortQuarantine,
  attempts = BIND_ATTEMPTS,
): S {
  const refused: S[] = [];
  try {
    for (let attempt = 1;; attempt++) {
      let socket: S;
      try {
        socket = bind();
      } catch (error) {
        if (refused.length === 0) throw error;
        return refused.pop()!;
      }
      if (attempt >= attempts || !quarantine.has(socket.addr.port)) return socket;
      refused.push(socket);
    }
  } finally {
    for (const socket of refused) socket.close();
  }
}

/** The process's quarantine, which every datagram relay shares by default. */
export const processQuarantine = new PortQuarantine();
