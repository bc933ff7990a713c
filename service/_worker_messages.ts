/**
 * The messages between the main isolate (service/workers.ts) and a worker isolate
 * (service/worker_host.ts). Everything here survives `postMessage`: shared memory travels as
 * `SharedArrayBuffer`s, and a listener's ACL, whose rules are class instances, as its text.
 * @module
 */
import type { ServerConfig } from "../config/types.ts";
import type { LogLevel } from "../relay/log.ts";
import type { ResolveReason } from "../relay/resolver.ts";
import type { CountersMemory } from "./shared_stats.ts";

/** A listener config as posted: no ACL object (`aclSource` instead), no plugin. */
export type PostedConfig = Omit<ServerConfig, "acl" | "plugin">;

export type ToWorker =
  /** First message: who the worker is and the memory every isolate shares. */
  | {
    kind: "init";
    /** The worker's isolate index (1, 2, …; the main isolate is 0): its counter row. */
    index: number;
    logLevel: LogLevel;
    /** The replay store's memory (protocol/shared_replay_store.ts). */
    replay: SharedArrayBuffer;
    /** Set when the process runs in a fleet: the salt check results that refuse a session. */
    fleet?: { refuses: string[] };
  }
  /** Start listener `id` (answered by a `reply` with `req`). */
  | {
    kind: "start";
    req: number;
    id: number;
    config: PostedConfig;
    aclSource?: string;
    counters: CountersMemory;
  }
  /** Apply a reload or an API change to listener `id`; no answer (the main isolate checked it). */
  | {
    kind: "update";
    id: number;
    config: PostedConfig;
    aclSource?: string;
    users: Record<string, SharedArrayBuffer>;
  }
  /** Close listener `id` (grace period included), then `reply`. */
  | { kind: "close"; req: number; id: number }
  /** Stop accepting on listener `id`, `reply` once its port is free, `drained` at its end. */
  | { kind: "retire"; req: number; id: number }
  /** The main isolate's resolver answered `resolve` `req`: addresses, or why not. */
  | { kind: "resolved"; req: number; addresses?: string[]; reason?: ResolveReason; error?: string }
  /** The main isolate's fleet answered `checkSalt` `req`. */
  | { kind: "saltChecked"; req: number; check: string }
  /** The main isolate's client-IP gate answered `admitIp` `req`. */
  | { kind: "ipAdmitted"; req: number; admitted: boolean };

export type FromWorker =
  | { kind: "ready" }
  /** A target name to resolve with the main isolate's resolver (one cache, one set of counters). */
  | { kind: "resolve"; req: number; name: string; ipv6First: boolean }
  /** A salt to check with the main isolate's fleet (one Redis connection per process). */
  | { kind: "checkSalt"; req: number; salt: Uint8Array; ttlMs: number }
  /** A session of a user with `max_client_ips`: the main isolate's gate decides (one window). */
  | { kind: "admitIp"; req: number; user: string; ip: string; max: number }
  | { kind: "reply"; req: number; error?: string }
  | { kind: "drained"; id: number };
