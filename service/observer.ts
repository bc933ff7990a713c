/**
 * The observer: every session ends in one `Outcome`, and this is where it becomes the one log
 * line (debug for the normal ones, info for those worth a human's look). Lines for statuses a
 * prober causes are throttled, so a scan cannot flood the log: at most `PROBE_LINES` per
 * `PROBE_WINDOW_MS`, then one line saying how many were left out.
 * @module
 */
import type { SessionStatus } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";

/** How one session ended. */
export interface Outcome {
  readonly status: SessionStatus;
  /** The application's or client's address, `host:port`. */
  readonly peer: string;
  /** The target, when the session got that far. */
  readonly target?: string;
  readonly user?: string;
  /** The outbound that carried it (`direct`, a server), when there was one. */
  readonly via?: string;
  readonly detail: string;
  readonly durationMs: number;
}

export interface Observer {
  /**
   * Whether an outcome with `status` would be used at all: most sessions end normally and are
   * logged at debug, so a caller asks first rather than format addresses it would throw away.
   */
  wants(status: SessionStatus): boolean;
  sessionEnded(outcome: Outcome): void;
}

/** Statuses logged at info: the application or operator should hear of them. */
const INFO_STATUSES: ReadonlySet<SessionStatus> = new Set([
  "ERR_CONNECT",
  "ERR_RESOLVE",
  "ERR_AUTH",
  "ERR_BLOCKED",
  "ERR_TARGET_FORBIDDEN",
  "ERR_INTERNAL",
]);
/** Statuses probers and scanners cause: throttled. */
const PROBE_STATUSES: ReadonlySet<SessionStatus> = new Set([
  "ERR_CIPHER",
  "ERR_REPLAY",
  "ERR_READ_ADDRESS",
  "ERR_CLIENT_PROTOCOL",
]);
export const PROBE_LINES = 20;
export const PROBE_WINDOW_MS = 10_000;

/**
 * Statuses a server logs at info: a server's operator wants to see probes and refusals (still
 * throttled), where a local's user does not.
 */
export const SERVER_INFO_STATUSES: ReadonlySet<SessionStatus> = new Set([
  ...INFO_STATUSES,
  "ERR_CIPHER",
  "ERR_REPLAY",
  "ERR_READ_ADDRESS",
]);

/** An observer that writes one line per session to `logger`, named by `role`. */
export function loggingObserver(
  role: string,
  logger: Logger,
  options: { infoStatuses?: ReadonlySet<SessionStatus>; now?: () => number } = {},
): Observer {
  const infoStatuses = options.infoStatuses ?? INFO_STATUSES;
  const now = options.now ?? (() => performance.now());
  let windowStart = -Infinity;
  let probeLines = 0;
  let suppressed = 0;
  return {
    wants(status) {
      return logger.enabled(infoStatuses.has(status) ? "info" : "debug");
    },
    sessionEnded(outcome) {
      const { status } = outcome;
      const level = infoStatuses.has(status) ? "info" : "debug";
      if (!logger.enabled(level)) return;
      if (PROBE_STATUSES.has(status)) {
        const t = now();
        if (t - windowStart >= PROBE_WINDOW_MS) {
          if (suppressed > 0) {
            logger[level](`${role}: ${suppressed} more failed handshakes were not logged`);
          }
          windowStart = t;
          probeLines = 0;
          suppressed = 0;
        }
        if (++probeLines > PROBE_LINES) {
          suppressed++;
          return;
        }
      }
      logger[level](formatOutcome(role, outcome));
    },
  };
}

/** `local 127.0.0.1:5000 user "bob" → example.com:443 via 1.2.3.4:8388 OK 1234 B (12 ms)` */
export function formatOutcome(role: string, outcome: Outcome): string {
  const user = outcome.user === undefined ? "" : ` user "${outcome.user}"`;
  const target = outcome.target === undefined ? "" : ` → ${outcome.target}`;
  const via = outcome.via === undefined ? "" : ` via ${outcome.via}`;
  return `${role} ${outcome.peer}${user}${target}${via} ${outcome.status} ${outcome.detail} (${outcome.durationMs} ms)`;
}
