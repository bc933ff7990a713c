/**
 * Several cores for one server (`workers`, `--workers N`). The main isolate starts N − 1 worker
 * isolates (`new Worker`, the module given, server_worker.ts), and every TCP listener the
 * supervisor starts is started in each of them too, on the same port with SO_REUSEPORT: the
 * kernel spreads new connections over the N accepting sockets. Without a count the pool starts
 * with the main isolate alone and adds workers, up to one per core, when the process stays busy
 * (service/worker_scaling.ts); a worker added late starts every running listener as it is then.
 *
 * What is shared, and how:
 *
 * - the replay memory: one `SharedArrayBuffer` (protocol/shared_replay_store.ts) that every
 *   isolate checks and adds to under a lock, so a first flight replayed to another worker is
 *   still refused;
 * - the counters: one row per isolate in shared memory (service/shared_stats.ts); the listener
 *   the supervisor holds exposes their sum as `stats`, so metrics, the API, the status page, the
 *   state file and the shutdown line read totals, live, with nothing to collect;
 * - the listener's life: `start`, `update` (reload, API users), `retire` and `close` of the
 *   listener the supervisor holds do the same in every worker; at shutdown each worker closes
 *   its listeners with their grace period, answers, and is then terminated (`close`).
 *
 * What stays in the main isolate only:
 *
 * - UDP: Deno's UDP sockets cannot take SO_REUSEPORT (only SO_REUSEADDR, with which the last
 *   socket bound takes every datagram), so the UDP half runs once, here. A 2022 UDP session
 *   therefore never moves between isolates: its NAT entry and packet-ID window stay where they
 *   are. Workers run a listener's TCP half (`tcp_only`), and `udp_only` listeners run here only.
 * - listeners with a SIP003 plugin: the plugin owns the public port and hands connections to
 *   a server on a loopback port chosen at start, which other isolates cannot share.
 * - the resolver: a worker asks the main isolate to resolve target names, so there is one
 *   cache, one set of DNS counters and one `nameserver` setting; and the management ports,
 *   signals and the PID file.
 *
 * A worker that dies (an error escaped it) is not restarted: its sockets close with it and the
 * kernel sends its share to the other isolates; the error is logged.
 * @module
 */
import type { ServerConfig } from "../config/types.ts";
import { ReplayFilter, type ReplayStore } from "../protocol/replay_filter.ts";
import type { SaltStore } from "../protocol/salt_pool.ts";
import { SharedReplayStore } from "../protocol/shared_replay_store.ts";
import { errorMessage } from "../protocol/errors.ts";
import { currentResolver } from "../relay/direct.ts";
import type { Logger, LogLevel } from "../relay/log.ts";
import { ResolveError } from "../relay/resolver.ts";
import type { FromWorker, PostedConfig, ToWorker } from "./_worker_messages.ts";
import { createCountersMemory, ListenerCounters } from "./shared_stats.ts";
import type { SupervisedServer } from "./supervisor.ts";
import type { FleetReplayCheck } from "../protocol/replay_filter.ts";
import type { ClientIpGate } from "./client_ips.ts";
import { DEFAULT_SCALING, ScaleUpPolicy, type ScalingOptions } from "./worker_scaling.ts";
import { processCpuMs } from "./process_sample.ts";

/** How long a worker may take to load its module and answer. */
const READY_TIMEOUT_MS = 60_000;
/** How often the main isolate copies per-user UDP bytes for the workers' data limits. */
const UDP_MIRROR_MS = 1000;

/** Options of {@linkcode startWorkers}. */
export interface WorkersOptions {
  /** The module each worker runs (server_worker.ts). */
  module: URL;
  logger: Logger;
  /** The workers' log level. Default: `logger.level`. */
  logLevel?: LogLevel;
  /** Aborted at shutdown: every isolate's listeners start their grace period then. */
  signal?: AbortSignal;
  /** The process's fleet (service/fleet.ts): workers check salts through this isolate's. */
  fleet?: FleetReplayCheck;
  /** The process's `max_client_ips` gate: workers ask this isolate's. Default: admit all. */
  clientIps?: ClientIpGate;
  /**
   * Without a count: when to add a worker. Default: `DEFAULT_SCALING`; `policy` replaces the
   * decision (tests add a worker when they choose).
   */
  scaling?: ScalingOptions & { policy?: Pick<ScaleUpPolicy, "sample"> };
  /** Cores to scale up to without a count. Default: `navigator.hardwareConcurrency`. */
  cores?: number;
}

/** What the main isolate's listener start gets to share with the workers. */
export interface SharedListenerOptions {
  replayFilter: ReplayStore;
  saltPool?: SaltStore;
  /** The main isolate's row of the listener's counters (absent with one isolate). */
  counters?: ListenerCounters;
}

/** A running server listener, as the supervisor and the wrappers here see it. */
export interface WorkerServer extends SupervisedServer {
  replaySize?(): number;
}

/** The worker isolates of a server process. */
export interface WorkerPool {
  /** Isolates that accept on each TCP listener now: the main one plus the workers. */
  readonly isolates: number;
  /** The most there will be: the count asked for, or the cores when scaling. */
  readonly maxIsolates: number;
  /**
   * Starts `config` here with `startHere` and, for a TCP listener without a plugin, in every
   * worker on the same port. The listener returned counts every isolate's sessions in `stats`
   * and applies `update`, `retire` and `close` everywhere. Throws (with nothing left running)
   * when any isolate cannot start it.
   */
  start<S extends WorkerServer>(
    config: ServerConfig,
    startHere: (config: ServerConfig, shared: SharedListenerOptions) => Promise<S>,
  ): Promise<S>;
  /** Ends the workers; call once the listeners are closed. */
  close(): Promise<void>;
}

/** One worker isolate and its outstanding requests. */
interface WorkerHandle {
  readonly index: number;
  readonly worker: Worker;
  readonly pending: Map<number, PromiseWithResolvers<void>>;
  /** Retired listeners of this worker still draining, by listener id. */
  readonly draining: Map<number, PromiseWithResolvers<void>>;
  /** Listeners it runs, by id, so its death can settle them. */
  readonly listeners: Set<number>;
  alive: boolean;
}

/** A listener running in several isolates, as a worker added late must start it. */
interface SharedListener {
  readonly id: number;
  /** Its config as last started or updated, ready to post. */
  posted: { config: PostedConfig; aclSource?: string };
  readonly counters: ListenerCounters;
  /** The workers running it (a late one joins before its start is sent). */
  readonly live: Set<WorkerHandle>;
}

/**
 * Starts `count` − 1 worker isolates and waits until each has loaded its module. With a count
 * of 1 there are none and every listener runs here as before. Without a count it starts none
 * and adds them as load asks (`options.scaling`), up to one isolate per core.
 */
export async function startWorkers(
  count: number | undefined,
  options: WorkersOptions,
): Promise<WorkerPool> {
  const maxIsolates = count ?? options.cores ?? navigator.hardwareConcurrency ?? 1;
  const scaling = count === undefined;
  const { logger } = options;
  if (maxIsolates <= 1) {
    // One salt memory for every listener: a million salts are 7 MiB once, not per port.
    const replayFilter = new ReplayFilter();
    return {
      isolates: 1,
      maxIsolates: 1,
      start: (config, startHere) => startHere(config, { replayFilter }),
      close: () => Promise.resolve(),
    };
  }
  const replay = new SharedReplayStore();
  const shared = { replayFilter: replay.filter, saltPool: replay.pool };
  const handles: WorkerHandle[] = [];
  let nextRequest = 1;
  let nextListener = 1;
  /** Workers spawned and not yet ready, and how to give up on each. */
  const starting = new Map<WorkerHandle, () => void>();
  /** Multi-isolate listeners running now, by id: what a worker added late starts. */
  const listeners = new Map<number, SharedListener>();
  let closed = false;
  /** Counters of running multi-isolate listeners with a UDP half: their UDP bytes are mirrored. */
  const mirrored = new Map<number, () => void>();
  const onDeath = new Set<(handle: WorkerHandle) => void>();

  const request = (
    handle: WorkerHandle,
    message: ToWorker & { req: number },
  ): Promise<void> => {
    if (!handle.alive) return Promise.resolve();
    const reply = Promise.withResolvers<void>();
    handle.pending.set(message.req, reply);
    handle.worker.postMessage(message);
    return reply.promise;
  };
  /** Ends `handle`'s isolate; its sockets close with it, so whatever waited on it is over. */
  const end = (handle: WorkerHandle) => {
    handle.alive = false;
    handle.worker.terminate();
    for (const reply of handle.pending.values()) reply.resolve();
    for (const drained of handle.draining.values()) drained.resolve();
    handle.pending.clear();
    handle.draining.clear();
  };
  /** The main isolate and the workers alive. */
  const running = () => 1 + handles.filter((handle) => handle.alive).length;
  const died = (handle: WorkerHandle, reason: string) => {
    if (!handle.alive) return;
    logger.error(`worker ${handle.index} died, not restarted: ${reason}`);
    end(handle);
    onDeath.forEach((listener) => listener(handle));
  };

  const spawn = (index: number): Promise<WorkerHandle> => {
    const worker = new Worker(options.module.href, { type: "module", name: `worker ${index}` });
    const handle: WorkerHandle = {
      index,
      worker,
      pending: new Map(),
      draining: new Map(),
      listeners: new Set(),
      alive: true,
    };
    const ready = Promise.withResolvers<WorkerHandle>();
    const timer = setTimeout(() => {
      // Ended, not left to load on: it would hold a heap, and may answer `ready` to no one.
      end(handle);
      ready.reject(new Error(`worker ${index} did not start in ${READY_TIMEOUT_MS} ms`));
    }, READY_TIMEOUT_MS);
    // A worker added under load may still be starting at shutdown: `close` ends it too.
    starting.set(handle, () => {
      clearTimeout(timer);
      ready.reject(new Error(`worker ${index}: the pool closed while it started`));
    });
    ready.promise.finally(() => starting.delete(handle)).catch(() => {});
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.kind === "ready") {
        clearTimeout(timer);
        ready.resolve(handle);
      } else if (message.kind === "resolve") {
        resolveFor(worker, message);
      } else if (message.kind === "checkSalt") {
        checkSaltFor(worker, options.fleet, message);
      } else if (message.kind === "admitIp") {
        const answer = (admitted: boolean) =>
          worker.postMessage({ kind: "ipAdmitted", req: message.req, admitted });
        if (!options.clientIps) answer(true);
        else {
          options.clientIps.admit(message.user, message.ip, message.max).then(
            answer,
            () => answer(true),
          );
        }
      } else if (message.kind === "reply") {
        const reply = handle.pending.get(message.req);
        handle.pending.delete(message.req);
        if (message.error === undefined) reply?.resolve();
        else reply?.reject(new Error(`worker ${index}: ${message.error}`));
      } else {
        handle.draining.get(message.id)?.resolve();
        handle.draining.delete(message.id);
      }
    };
    worker.onerror = (event) => {
      // Handled here: unhandled, a worker's error would end the whole process.
      event.preventDefault();
      clearTimeout(timer);
      ready.reject(new Error(`worker ${index}: ${event.message}`));
      died(handle, event.message);
    };
    const init: ToWorker = {
      kind: "init",
      index,
      logLevel: options.logLevel ?? logger.level,
      replay: replay.buffer,
      ...(options.fleet
        ? {
          fleet: {
            refuses: ["replay", "unavailable"].filter((check) => options.fleet!.refuses(check)),
          },
        }
        : {}),
    };
    worker.postMessage(init);
    return ready.promise;
  };

  try {
    const started = await Promise.allSettled(
      Array.from({ length: scaling ? 0 : maxIsolates - 1 }, (_, i) => spawn(i + 1)),
    );
    for (const result of started) {
      if (result.status === "fulfilled") handles.push(result.value);
    }
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (error) {
    handles.forEach(end);
    throw error;
  }
  if (scaling) {
    logger.info(
      `one isolate accepts on every TCP port; up to ${maxIsolates} as load asks (workers)`,
    );
  } else {
    logger.info(
      `${maxIsolates} isolates accept on every TCP port (workers; UDP and plugin ports run in ` +
        "the main one)",
    );
  }
  const mirrorTimer = setInterval(() => mirrored.forEach((mirror) => mirror()), UDP_MIRROR_MS);
  Deno.unrefTimer(mirrorTimer);

  /** Starts `listener` in `handle`, which joins it first (so a retire sent later reaches it). */
  const startIn = (handle: WorkerHandle, listener: SharedListener): Promise<void> => {
    listener.live.add(handle);
    handle.listeners.add(listener.id);
    return request(handle, {
      kind: "start",
      req: nextRequest++,
      id: listener.id,
      ...listener.posted,
      counters: listener.counters.memory,
    });
  };

  /** Adds one worker, which starts every running listener; false when it could not start. */
  const grow = async (): Promise<boolean> => {
    const index = handles.length + 1;
    let handle: WorkerHandle;
    try {
      handle = await spawn(index);
    } catch (error) {
      if (!closed) {
        logger.error(`worker ${index} could not start, not retried: ${errorMessage(error)}`);
      }
      return false;
    }
    if (closed) {
      end(handle);
      return false;
    }
    handles.push(handle);
    const ports = [...listeners.values()];
    const results = await Promise.allSettled(ports.map((listener) => startIn(handle, listener)));
    const failed: number[] = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") return;
      // The listener still runs in the other isolates; this one takes no share of it.
      const listener = ports[i]!;
      listener.live.delete(handle);
      handle.listeners.delete(listener.id);
      failed.push(listener.posted.config.port);
      logger.error(
        `worker ${index} could not start port ${listener.posted.config.port}: ` +
          errorMessage(result.reason),
      );
    });
    // A close or the worker's death meanwhile settled its starts without starting anything.
    if (closed || !handle.alive) return false;
    logger.info(
      `load: worker ${index} added, ${running()} of ${maxIsolates} isolates accept on every TCP ` +
        `port${failed.length ? ` (not on ${failed.join(", ")})` : ""}`,
    );
    return true;
  };

  /** Ends the load sampling (at close, or once every core has an isolate). */
  let stopScaling = () => {};
  if (scaling) {
    const policy = options.scaling?.policy ?? new ScaleUpPolicy(options.scaling);
    const sampleMs = options.scaling?.sampleMs ?? DEFAULT_SCALING.sampleMs;
    let last = { cpu: processCpuMs(), at: performance.now() };
    let growing = false;
    const timer = setInterval(() => {
      const now = { cpu: processCpuMs(), at: performance.now() };
      const add = policy.sample(now.cpu - last.cpu, now.at - last.at, running());
      last = now;
      if (!add || growing || handles.length + 1 >= maxIsolates) return;
      growing = true;
      grow().then((grown) => {
        growing = false;
        if (!grown || handles.length + 1 >= maxIsolates) stopScaling();
      });
    }, sampleMs);
    Deno.unrefTimer(timer);
    stopScaling = () => clearInterval(timer);
    // Shutdown starts before the pool closes (after the grace period): no worker is added then.
    options.signal?.addEventListener("abort", () => {
      closed = true;
      stopScaling();
    }, { once: true });
  }

  const start = async <S extends WorkerServer>(
    config: ServerConfig,
    startHere: (config: ServerConfig, shared: SharedListenerOptions) => Promise<S>,
  ): Promise<S> => {
    if (config.plugin !== undefined || config.mode === "udp_only") {
      return await startHere(config, shared);
    }
    const counters = new ListenerCounters(createCountersMemory(maxIsolates), 0);
    const here = await startHere({ ...config, reusePort: true }, { ...shared, counters });
    const id = nextListener++;
    const port = here.addr.port;
    const posted = (next: ServerConfig) => postable({ ...next, port, reusePort: true });
    const listener: SharedListener = { id, posted: posted(config), counters, live: new Set() };
    const alive = handles.filter((handle) => handle.alive);
    // Known from now on (in the same step as `alive` is read): a worker added while these
    // starts run starts it too, and exactly one of the two sends it the start.
    listeners.set(id, listener);
    const results = await Promise.allSettled(alive.map((handle) => startIn(handle, listener)));
    const failed = results.find((result) => result.status === "rejected");
    if (failed) {
      listeners.delete(id);
      const live = [...listener.live];
      await Promise.all([
        here.close(),
        ...live.map((handle) => request(handle, { kind: "close", req: nextRequest++, id })),
      ]);
      live.forEach((handle) => handle.listeners.delete(id));
      throw (failed as PromiseRejectedResult).reason;
    }

    /**
     * Sends `kind` to the workers running it; from then on no worker added late starts it. A
     * worker's failure is logged: the listener is gone from the other isolates all the same.
     */
    const everywhere = (kind: "close" | "retire", live = [...listener.live]) => {
      listeners.delete(id);
      return Promise.all(
        live.map((handle) =>
          request(handle, { kind, req: nextRequest++, id }).catch((error) =>
            logger.error(`port ${port}: ${kind} failed in a worker: ${errorMessage(error)}`)
          )
        ),
      );
    };
    const workersClosed = Promise.withResolvers<void>();
    const forget = () => {
      listener.live.forEach((handle) => handle.listeners.delete(id));
      mirrored.delete(id);
      onDeath.delete(onWorkerDeath);
    };
    const onWorkerDeath = (handle: WorkerHandle) => {
      if (handle.listeners.has(id)) counters.forgetLive(handle.index);
    };
    onDeath.add(onWorkerDeath);
    if (here.udpStats) {
      const udpStats = here.udpStats;
      mirrored.set(id, () => counters.mirrorUdp(udpStats));
    }
    let closing: Promise<void> | undefined;
    const close = () =>
      closing ??= (async () => {
        await Promise.all([here.close(), everywhere("close")]);
        forget();
        workersClosed.resolve();
      })();
    let retiring: Promise<{ drained: Promise<void> }> | undefined;
    const retire = () =>
      retiring ??= (async () => {
        const live = [...listener.live];
        const drains = live.map((handle) => {
          const drained = Promise.withResolvers<void>();
          if (handle.alive) handle.draining.set(id, drained);
          else drained.resolve();
          return drained.promise;
        });
        const [retired] = await Promise.all([here.retire(), everywhere("retire", live)]);
        const drained = Promise.all([retired.drained, ...drains]).then(() => {
          forget();
          workersClosed.resolve();
        });
        return { drained };
      })();
    options.signal?.addEventListener("abort", () => close(), { once: true });
    const service: S = {
      ...here,
      stats: counters.totals,
      closed: Promise.all([here.closed, workersClosed.promise]).then(() => {}),
      close,
      retire,
      update(next: ServerConfig): string[] {
        const changes = here.update({ ...next, reusePort: true });
        // What a worker added later starts with.
        listener.posted = posted(next);
        for (const handle of listener.live) {
          if (!handle.alive) continue;
          const message: ToWorker = {
            kind: "update",
            id,
            ...listener.posted,
            users: counters.memory.users,
          };
          handle.worker.postMessage(message);
        }
        return changes;
      },
      // The isolates spawned so far (the memory has a row for every one there may be).
      connectionsPerIsolate: () => counters.perIsolate().slice(0, 1 + handles.length),
    };
    return service;
  };

  return {
    get isolates() {
      return running();
    },
    maxIsolates,
    start,
    close() {
      closed = true;
      clearInterval(mirrorTimer);
      stopScaling();
      for (const [handle, giveUp] of starting) {
        end(handle);
        giveUp();
      }
      handles.forEach(end);
      return Promise.resolve();
    },
  };
}

/** Resolves a worker's target name with this isolate's resolver and posts the answer. */
function resolveFor(worker: Worker, message: FromWorker & { kind: "resolve" }): void {
  const answer = (reply: ToWorker) => worker.postMessage(reply);
  currentResolver().resolve(message.name, { ipv6First: message.ipv6First }).then(
    (addresses) => answer({ kind: "resolved", req: message.req, addresses }),
    (error) =>
      answer({
        kind: "resolved",
        req: message.req,
        ...(error instanceof ResolveError ? { reason: error.reason } : {}),
        error: errorMessage(error),
      }),
  );
}

/** Checks a worker's salt with this isolate's fleet and posts the answer. */
function checkSaltFor(
  worker: Worker,
  fleet: FleetReplayCheck | undefined,
  message: FromWorker & { kind: "checkSalt" },
): void {
  const answer = (check: string) =>
    worker.postMessage({ kind: "saltChecked", req: message.req, check });
  if (!fleet) return answer("fresh");
  fleet.checkSalt(message.salt, message.ttlMs).then(answer, () => answer("unavailable"));
}

/** `config` as a worker can receive it: the TCP half, the ACL as its text. */
function postable(config: ServerConfig): { config: PostedConfig; aclSource?: string } {
  const { acl, plugin: _plugin, ...rest } = config;
  const posted: PostedConfig = { ...rest, mode: "tcp_only" };
  return acl ? { config: posted, aclSource: acl.source } : { config: posted };
}
