/**
 * Several Shadowsocks servers as one outbound. Each session tries the servers best first and
 * moves on to the next when a connect fails, before the application is answered, so an
 * application sees no error while any server works. Best means: up (the last check or session
 * succeeded) before unchecked before down, then the lowest latency of the last check, with the
 * configured order among servers about as fast as the fastest.
 *
 * Health checks run in the background every `intervalMs`: a TCP connect to each server and a
 * small HTTP request through it to `checkTarget`, whose first response byte gives the latency.
 * A server that fails is tried last until a check succeeds again; each change is one log line.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import { errorMessage } from "../protocol/errors.ts";
import { closeQuietly, writeAll } from "../relay/io.ts";
import type { Logger } from "../relay/log.ts";
import type { Outbound, OutboundConnection } from "./outbound.ts";

/** How long one health check may take before it counts as a failure. */
const CHECK_TIMEOUT_MS = 5000;
/** Latencies this close to the fastest count as equal (see `ranked`). */
export const LATENCY_TOLERANCE_MS = 50;

export type ServerHealth = "unknown" | "up" | "down";

/** What the balancer knows of one server; read by tests, logs and (later) the status page. */
export interface ServerState {
  readonly outbound: Outbound;
  health: ServerHealth;
  /** Milliseconds to the first response byte in the last successful check. */
  latencyMs: number | undefined;
  /** Why it is down. */
  lastError: string | undefined;
}

export interface BalancerOptions {
  logger: Logger;
  /** Where checks send their request; omit to check nothing (sessions still fail over). */
  checkTarget?: Address;
  /** Time between checks of every server. */
  intervalMs: number;
}

const RANK: Record<ServerHealth, number> = { up: 0, unknown: 1, down: 2 };

export class Balancer implements Outbound {
  #servers: readonly ServerState[];
  readonly #options: BalancerOptions;
  readonly #stop = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #checking: Promise<void> | undefined;

  constructor(outbounds: readonly Outbound[], options: BalancerOptions) {
    this.#servers = [];
    this.#options = options;
    this.replace(outbounds);
  }

  get name(): string {
    return `balancer of ${this.#servers.length}`;
  }

  /** What the balancer knows of each server, in configured order. */
  get servers(): readonly ServerState[] {
    return this.#servers;
  }

  /**
   * Makes `outbounds` the server list (an online config refresh): a server already known keeps
   * its health and latency, a new one starts unknown, a dropped one gets no new sessions (its
   * live ones run on). Sessions starting now see the new list.
   */
  replace(outbounds: readonly Outbound[]): void {
    if (outbounds.length === 0) throw new RangeError("A balancer needs at least one server");
    const known = new Map(this.#servers.map((state) => [state.outbound, state]));
    this.#servers = outbounds.map((outbound) =>
      known.get(outbound) ??
        { outbound, health: "unknown", latencyMs: undefined, lastError: undefined }
    );
  }

  /**
   * The servers in the order a session tries them: by health, then by latency, except that
   * servers within `LATENCY_TOLERANCE_MS` of the fastest keep the configured order, so the first
   * server stays the primary while it is about as fast as any (no flapping between near-equal
   * servers, and the operator's order means something).
   */
  ranked(): ServerState[] {
    const fastest = Math.min(
      ...this.#servers.filter((s) => s.health === "up").map((s) => s.latencyMs ?? Infinity),
    );
    const band = (s: ServerState) =>
      s.latencyMs !== undefined && s.latencyMs <= fastest + LATENCY_TOLERANCE_MS
        ? 0
        : (s.latencyMs ?? Infinity);
    return [...this.#servers].sort((a, b) => RANK[a.health] - RANK[b.health] || band(a) - band(b));
  }

  async connect(target: Address, options: { signal: AbortSignal }): Promise<OutboundConnection> {
    let lastError: unknown;
    // One server (the usual case): nothing to rank, so no sorted copy per session.
    const servers = this.#servers.length === 1 ? this.#servers : this.ranked();
    for (const server of servers) {
      try {
        const connection = await server.outbound.connect(target, options);
        if (server.health !== "up") this.#mark(server, "up", undefined);
        return { stream: connection.stream, bound: connection.bound, via: server.outbound.name };
      } catch (error) {
        lastError = error;
        if (options.signal.aborted) break;
        this.#mark(server, "down", errorMessage(error));
      }
    }
    throw lastError;
  }

  /** Starts the background checks (the first round at once); `close` ends them. */
  start(): void {
    if (this.#options.checkTarget === undefined || this.#timer !== undefined) return;
    const round = async () => {
      this.#checking = this.checkAll();
      await this.#checking;
      if (!this.#stop.signal.aborted) this.#timer = setTimeout(round, this.#options.intervalMs);
    };
    this.#timer = setTimeout(round, 0);
  }

  /** Checks every server once, at the same time. */
  async checkAll(): Promise<void> {
    const target = this.#options.checkTarget;
    // One server is tried whatever its health: checking it would only add traffic.
    if (target === undefined || this.#servers.length < 2) return;
    await Promise.all(this.#servers.map(async (server) => {
      const started = performance.now();
      try {
        await checkThrough(server.outbound, target, this.#stop.signal);
        server.latencyMs = Math.round(performance.now() - started);
        this.#mark(server, "up", undefined);
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        this.#mark(server, "down", errorMessage(error));
      }
    }));
  }

  async close(): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#timer);
    await this.#checking;
  }

  #mark(server: ServerState, health: ServerHealth, error: string | undefined): void {
    const was = server.health;
    server.health = health;
    server.lastError = error;
    if (was === health) return;
    const name = server.outbound.name;
    if (health === "down") this.#options.logger.warn(`server ${name} is down: ${error}`);
    else if (was === "down") {
      const latency = server.latencyMs === undefined ? "" : ` (${server.latencyMs} ms)`;
      this.#options.logger.info(`server ${name} is back up${latency}`);
    }
  }
}

/**
 * One health check: a `HEAD /` request to `target` through `outbound`, done when the first
 * response byte arrives. Any answer proves the server decrypted, connected and relayed.
 */
async function checkThrough(outbound: Outbound, target: Address, stop: AbortSignal) {
  // One controller for the timeout and the balancer's stop (AbortSignal.any would keep every
  // check's signal reachable from the long-lived stop signal).
  const controller = new AbortController();
  const abort = () => controller.abort();
  const timer = setTimeout(abort, CHECK_TIMEOUT_MS);
  stop.addEventListener("abort", abort, { once: true });
  const signal = controller.signal;
  let stream;
  try {
    ({ stream } = await outbound.connect(target, { signal }));
  } catch (error) {
    clearTimeout(timer);
    stop.removeEventListener("abort", abort);
    throw error;
  }
  const onAbort = () => closeQuietly(stream);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const host = target.type === "ipv6" ? `[${target.host}]` : target.host;
    const request = `HEAD / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await writeAll(stream, new TextEncoder().encode(request));
    const n = await stream.read(new Uint8Array(64));
    if (signal.aborted) throw new Error("no answer within 5 s");
    if (n === null) throw new Error("closed without an answer");
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", abort);
    closeQuietly(stream);
  }
}
