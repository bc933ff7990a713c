/**
 * The worker side of service/workers.ts: runs in a worker isolate, starts, updates, retires
 * and closes the listeners the main isolate asks for, with the process's shared replay memory
 * and its own row of each listener's shared counters. The listener itself is whatever `start`
 * makes (server_worker.ts passes server.ts's `startListener`), so a worker serves sessions
 * exactly as the main isolate does. Log lines start with `worker N:`.
 * @module
 */
import { DEFAULT_GRACE_PERIOD } from "../config/load.ts";
import type { ServerConfig } from "../config/types.ts";
import { parseAcl } from "../protocol/acl.ts";
import { errorMessage } from "../protocol/errors.ts";
import { SharedReplayStore } from "../protocol/shared_replay_store.ts";
import { useResolver } from "../relay/direct.ts";
import { createLogger, type Logger } from "../relay/log.ts";
import { ResolveError, type ResolveOptions, Resolver } from "../relay/resolver.ts";
import type { FromWorker, PostedConfig, ToWorker } from "./_worker_messages.ts";
import { ListenerCounters } from "./shared_stats.ts";
import type { SharedListenerOptions, WorkerServer } from "./workers.ts";
import type { FleetReplayCheck } from "../protocol/replay_filter.ts";
import type { ClientIpGate } from "./client_ips.ts";

/** What a worker's listener start gets. */
export type WorkerStart = (
  config: ServerConfig,
  options: SharedListenerOptions & {
    logger: Logger;
    graceMs: number;
    fleet?: FleetReplayCheck;
    clientIps: ClientIpGate;
  },
) => Promise<WorkerServer>;

/** One listener this worker runs. */
interface Hosted {
  service: WorkerServer;
  counters: ListenerCounters;
}

/** Serves the main isolate's requests in this worker until it is terminated. */
export function hostListeners(start: WorkerStart): void {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
    postMessage(message: FromWorker): void;
  };
  let setup:
    | { logger: Logger; replay: SharedReplayStore; index: number; fleet?: FleetReplayCheck }
    | undefined;
  const listeners = new Map<number, Hosted>();
  /** Listeners whose start is under way, by id: their other requests wait for it. */
  const starting = new Map<number, Promise<void>>();
  /** The last ACL parsed: a reload or API change usually posts the same text again. */
  let acl: { source: string; file: ReturnType<typeof parseAcl> } | undefined;
  const configOf = (posted: PostedConfig, aclSource: string | undefined): ServerConfig => {
    if (aclSource === undefined) return posted;
    if (acl?.source !== aclSource) acl = { source: aclSource, file: parseAcl(aclSource) };
    return { ...posted, acl: acl.file };
  };
  const lookups = new Map<number, PromiseWithResolvers<string[]> & { name: string }>();
  let nextLookup = 1;
  /** Target names go to the main isolate's resolver: one cache and one set of DNS counters. */
  const mainResolver = new (class extends Resolver {
    override async resolve(name: string, options: ResolveOptions): Promise<string[]> {
      options.signal?.throwIfAborted();
      const req = nextLookup++;
      const lookup = { ...Promise.withResolvers<string[]>(), name };
      lookups.set(req, lookup);
      scope.postMessage({ kind: "resolve", req, name, ipv6First: options.ipv6First });
      if (!options.signal) return await lookup.promise;
      const aborted = Promise.withResolvers<never>();
      const onAbort = () => aborted.reject(options.signal!.reason);
      options.signal.addEventListener("abort", onAbort, { once: true });
      try {
        return await Promise.race([lookup.promise, aborted.promise]);
      } finally {
        options.signal.removeEventListener("abort", onAbort);
      }
    }
  })();
  const saltChecks = new PendingAnswers<string>();
  /** The main isolate's fleet, asked by message: one Redis connection per process. */
  const mainFleet = (refused: readonly string[]): FleetReplayCheck => ({
    checkSalt: (salt, ttlMs) =>
      saltChecks.ask((req) => scope.postMessage({ kind: "checkSalt", req, salt, ttlMs })),
    refuses: (check) => refused.includes(check),
  });
  const ipChecks = new PendingAnswers<boolean>();
  /** The main isolate's client-IP gate, asked by message: one window per process. */
  const mainClientIps: ClientIpGate = {
    admit: (user, ip, max) =>
      ipChecks.ask((req) => scope.postMessage({ kind: "admitIp", req, user, ip, max })),
  };
  const reply = (req: number, error?: unknown) =>
    scope.postMessage(
      error === undefined ? { kind: "reply", req } : {
        kind: "reply",
        req,
        error: errorMessage(error),
      },
    );

  const handle = async (message: ToWorker) => {
    if (message.kind === "init") {
      const logger = prefixed(createLogger(message.logLevel), `worker ${message.index}: `);
      useResolver(mainResolver);
      setup = {
        logger,
        replay: new SharedReplayStore({ buffer: message.replay }),
        index: message.index,
        ...(message.fleet ? { fleet: mainFleet(message.fleet.refuses) } : {}),
      };
      scope.postMessage({ kind: "ready" });
      return;
    }
    const { logger, replay, index, fleet } = setup!;
    switch (message.kind) {
      case "start": {
        const started = Promise.withResolvers<void>();
        starting.set(message.id, started.promise);
        try {
          const config = configOf(message.config, message.aclSource);
          const counters = new ListenerCounters(message.counters, index);
          const service = await start(config, {
            logger,
            graceMs: (config.gracePeriod ?? DEFAULT_GRACE_PERIOD) * 1000,
            replayFilter: replay.filter,
            saltPool: replay.pool,
            counters,
            clientIps: mainClientIps,
            ...(fleet ? { fleet } : {}),
          });
          listeners.set(message.id, { service, counters });
          reply(message.req);
        } catch (error) {
          reply(message.req, error);
        } finally {
          starting.delete(message.id);
          started.resolve();
        }
        return;
      }
      case "ipAdmitted": {
        ipChecks.answer(message.req, message.admitted);
        return;
      }
      case "saltChecked": {
        saltChecks.answer(message.req, message.check);
        return;
      }
      case "resolved": {
        const lookup = lookups.get(message.req);
        lookups.delete(message.req);
        if (message.addresses) lookup?.resolve(message.addresses);
        else if (message.reason) lookup?.reject(new ResolveError(lookup.name, message.reason));
        else lookup?.reject(new Error(message.error));
        return;
      }
    }
    // The listener's start first: a worker added under load gets a start, then possibly an
    // update or a retire, in one burst of messages.
    await starting.get(message.id);
    switch (message.kind) {
      case "update": {
        const hosted = listeners.get(message.id);
        if (!hosted) return;
        try {
          hosted.counters.adopt(message.users);
          hosted.service.update(configOf(message.config, message.aclSource));
        } catch (error) {
          // The main isolate applied the same config without error: this is a bug.
          logger.error(`listener not updated: ${errorMessage(error)}`);
        }
        return;
      }
      case "close": {
        // Answered whatever happens (an error too): the main isolate's close waits for it.
        let failure: unknown;
        try {
          await listeners.get(message.id)?.service.close();
        } catch (error) {
          failure = error ?? new Error("close failed");
        }
        listeners.delete(message.id);
        reply(message.req, failure);
        return;
      }
      case "retire": {
        // Kept until drained: a shutdown meanwhile still cuts its sessions after the grace period.
        const hosted = listeners.get(message.id);
        try {
          let retired: { drained: Promise<void> } | undefined;
          let failure: unknown;
          try {
            retired = await hosted?.service.retire();
          } catch (error) {
            failure = error ?? new Error("retire failed");
          }
          reply(message.req, failure);
          await retired?.drained;
        } finally {
          // Sent whatever happens: the main isolate's retire waits for it.
          listeners.delete(message.id);
          scope.postMessage({ kind: "drained", id: message.id });
        }
        return;
      }
    }
  };
  scope.onmessage = (event) => {
    handle(event.data).catch((error) => {
      (setup?.logger ?? createLogger("error")).error(`request failed: ${errorMessage(error)}`);
    });
  };
}

/** `logger` with `prefix` before every message. */
function prefixed(logger: Logger, prefix: string): Logger {
  return {
    level: logger.level,
    enabled: logger.enabled,
    error: (message) => logger.error(prefix + message),
    warn: (message) => logger.warn(prefix + message),
    info: (message) => logger.info(prefix + message),
    debug: (message) => logger.debug(prefix + message),
    trace: (message) => logger.trace(prefix + message),
  };
}

/** Questions a worker asked the main isolate, waiting for their answers by request number. */
class PendingAnswers<T> {
  #next = 1;
  readonly #waiting = new Map<number, (answer: T) => void>();

  /** Sends the question (`post`, given a fresh request number); resolves with its answer. */
  ask(post: (req: number) => void): Promise<T> {
    const req = this.#next++;
    const { promise, resolve } = Promise.withResolvers<T>();
    this.#waiting.set(req, resolve);
    post(req);
    return promise;
  }

  answer(req: number, answer: T): void {
    this.#waiting.get(req)?.(answer);
    this.#waiting.delete(req);
  }
}
