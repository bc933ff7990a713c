/**
 * How accept and receive loops survive errors. A listening socket is hit all day by clients that
 * reset before we accept them (`accept` then fails with "not connected"), and a busy process can
 * run out of file descriptors for a moment. Neither may end the loop: that would leave the port
 * bound and every later client hanging in the kernel's queue, a remote denial of service in a
 * few packets. The rule:
 *
 * - an error that concerns one connection or datagram (reset, aborted, not connected, protocol)
 *   is counted and skipped at once;
 * - a resource error (too many open files, no buffers, no memory), or one we do not know, makes
 *   the loop wait (5 ms, doubling up to 1 s, back to 5 ms after a success) with at most one log
 *   line per 10 s, then try again: the process neither spins nor gives up;
 * - only the socket's own closing ends the loop.
 * @module
 */
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "./log.ts";

/** What an error from `accept` or `receive` means for the loop that got it. */
export type LoopErrorKind = "peer" | "resource" | "closed" | "unknown";

/** Linux errno values of per-connection failures that `accept` can report. */
const PEER_ERRNOS = new Set([
  1, // EPERM: a firewall refused the connection
  71, // EPROTO
  103, // ECONNABORTED
  104, // ECONNRESET
  107, // ENOTCONN: reset before we accepted it
  110, // ETIMEDOUT
  111, // ECONNREFUSED: an ICMP error for one datagram's peer
  113, // EHOSTUNREACH
]);
/** Linux errno values of the process or system running short of something. */
const RESOURCE_ERRNOS = new Set([
  12, // ENOMEM
  23, // ENFILE: the system's file table is full
  24, // EMFILE: this process's file limit is reached
  105, // ENOBUFS
]);

/** Sorts an error from `accept`/`receive` into the kinds above. */
export function classifyLoopError(error: unknown): LoopErrorKind {
  if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
    return "closed";
  }
  if (
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.ConnectionRefused
  ) return "peer";
  const errno = osErrorNumber(error);
  if (errno !== undefined && PEER_ERRNOS.has(errno)) return "peer";
  if (errno !== undefined && RESOURCE_ERRNOS.has(errno)) return "resource";
  return "unknown";
}

/** The `os error N` that Deno puts in system error messages, if any. */
function osErrorNumber(error: unknown): number | undefined {
  const match = /\(os error (\d+)\)/.exec(errorMessage(error));
  return match ? Number(match[1]) : undefined;
}

/** First and longest pause after a resource error. */
export const BACKOFF_MIN_MS = 5;
export const BACKOFF_MAX_MS = 1000;
/** At most one warning per loop per this many milliseconds. */
export const LOG_INTERVAL_MS = 10_000;

/** Counts of the errors a loop skipped or waited out. */
export interface LoopErrorCounts {
  /** Errors that concerned one connection or datagram. */
  peer: number;
  /** Resource and unknown errors, each followed by a pause. */
  resource: number;
}

export function createLoopErrorCounts(): LoopErrorCounts {
  return { peer: 0, resource: 0 };
}

export interface LoopGuardOptions {
  /** Names the loop in log lines, e.g. "server accept" or "server udp receive". */
  readonly name: string;
  readonly logger: Logger;
  /** Aborted when the loop's owner closes the socket: ends a pause at once. */
  readonly signal: AbortSignal;
  /** Where the counts go; a fresh object if not given. */
  readonly counts?: LoopErrorCounts;
  /** What the warning should add about the process, e.g. its file limit. */
  readonly hint?: string;
  /** Clock and timer, injectable for tests. */
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * Decides, error by error, whether a loop goes on (after a pause, if any) or ends. One guard per
 * loop: it keeps the current backoff and the log throttle.
 */
export class LoopGuard {
  readonly counts: LoopErrorCounts;
  readonly #options: LoopGuardOptions;
  #backoffMs = 0;
  #lastLogAt = -Infinity;
  #unlogged = 0;

  constructor(options: LoopGuardOptions) {
    this.#options = options;
    this.counts = options.counts ?? createLoopErrorCounts();
  }

  /** The loop got something: the next resource error starts from the shortest pause again. */
  succeeded(): void {
    this.#backoffMs = 0;
  }

  /**
   * Handles one error: resolves to true when the loop should try again, false when it should
   * end (the socket is closed). Waits out the backoff first when the error asks for it.
   */
  async failed(error: unknown): Promise<boolean> {
    const { signal, logger, name } = this.#options;
    if (signal.aborted) return false;
    const kind = classifyLoopError(error);
    if (kind === "closed") {
      // Our owner did not close it (the signal would be aborted): say so, the port is gone.
      logger.error(`${name}: socket closed unexpectedly, loop ended: ${errorMessage(error)}`);
      return false;
    }
    if (kind === "peer") {
      this.counts.peer++;
      logger.debug(`${name}: skipped: ${errorMessage(error)}`);
      return true;
    }
    this.counts.resource++;
    this.#backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.#backoffMs * 2));
    this.#warn(error);
    await (this.#options.sleep ?? abortableSleep)(this.#backoffMs, signal);
    return !signal.aborted;
  }

  #warn(error: unknown): void {
    const now = (this.#options.now ?? performance.now.bind(performance))();
    if (now - this.#lastLogAt < LOG_INTERVAL_MS) {
      this.#unlogged++;
      return;
    }
    const { logger, name, hint } = this.#options;
    const more = this.#unlogged > 0 ? ` (and ${this.#unlogged} more since the last line)` : "";
    const extra = hint ? `; ${hint}` : "";
    logger.warn(
      `${name}: ${
        errorMessage(error)
      }${more}; pausing ${this.#backoffMs} ms, then going on${extra}`,
    );
    this.#lastLogAt = now;
    this.#unlogged = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
