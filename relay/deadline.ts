/**
 * A one-shot timer for handshakes. Deno's `read` takes no deadline, so expiry closes the
 * connection, which makes the pending read fail; `expired` then tells why it failed.
 *
 * `linkedSignal()` gives operations that do take a signal (connect) one that fires at the
 * deadline or on shutdown. It is built from a plain AbortController rather than
 * `AbortSignal.any([shutdown, AbortSignal.timeout(ms)])`: measured in Deno 2.9.6, every
 * `AbortSignal.any` against the service's long-lived shutdown signal stays reachable after GC
 * (about 90 bytes each), which over millions of sessions is a leak. It follows the shutdown
 * signal through relay/on_abort.ts, one listener for all sessions.
 *
 * The clock and timer are injectable (`options.clock`) so tests can step time exactly instead
 * of sleeping past the deadline and hoping it fired. The system clock's timers are queued
 * (relay/timer_queue.ts): one runtime timer for the handshakes of a service, not one each.
 * @module
 */
import { offAbort, onAbort } from "./on_abort.ts";
import { type QueuedTimer, startTimer, stopTimer } from "./timer_queue.ts";

/** Where a {@linkcode Deadline} reads the time and sets its timer. */
export interface DeadlineClock {
  /** The current time in milliseconds (any fixed origin). */
  now(): number;
  /** Runs `callback` once, `ms` from now; returns a handle for `cancel`. */
  schedule(callback: () => void, ms: number): unknown;
  /** Cancels a scheduled callback; a handle that already ran is ignored. */
  cancel(handle: unknown): void;
}

/** `Date.now` and queued timers: what every session uses. */
export const systemClock: DeadlineClock = {
  now: () => Date.now(),
  schedule: (callback, ms) => startTimer(callback, ms),
  cancel: (handle) => stopTimer(handle as QueuedTimer),
};

export interface DeadlineOptions {
  /** Time and timer source. Default {@linkcode systemClock}. */
  clock?: DeadlineClock;
}

export class Deadline {
  readonly #clock: DeadlineClock;
  #timer: unknown;
  #expired = false;
  readonly #endsAt: number;
  /** Linked signals still tied to their parent: cut at expiry or `clear()`, whichever is first. */
  #links: Link[] | undefined;

  constructor(ms: number, onExpire: () => void, options: DeadlineOptions = {}) {
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#endsAt = clock.now() + ms;
    this.#timer = clock.schedule(() => {
      this.#expired = true;
      this.#timer = undefined;
      const links = this.#release();
      for (const link of links) {
        link.controller.abort(new DOMException("Deadline passed", "TimeoutError"));
      }
      onExpire();
    }, ms);
  }

  get expired(): boolean {
    return this.#expired;
  }

  /** Milliseconds left, at least 1. */
  get remainingMs(): number {
    return Math.max(1, this.#endsAt - this.#clock.now());
  }

  /**
   * A signal that aborts (with a `TimeoutError`) when the deadline passes, or when `parent`
   * aborts. After `clear()` it never fires and holds no reference from `parent`.
   */
  linkedSignal(parent: AbortSignal): AbortSignal {
    const controller = new AbortController();
    if (parent.aborted) {
      controller.abort(parent.reason);
      return controller.signal;
    }
    if (this.#expired) {
      controller.abort(new DOMException("Deadline passed", "TimeoutError"));
      return controller.signal;
    }
    const onParentAbort = () => controller.abort(parent.reason);
    // One shared listener per parent (relay/on_abort.ts): the parent is the service's
    // long-lived shutdown signal, and every handshake links to it.
    onAbort(parent, onParentAbort);
    (this.#links ??= []).push({ parent, onParentAbort, controller });
    return controller.signal;
  }

  clear(): void {
    if (this.#timer !== undefined) this.#clock.cancel(this.#timer);
    this.#timer = undefined;
    this.#release();
  }

  [Symbol.dispose](): void {
    this.clear();
  }

  /** Unties every linked signal from its parent; returns them. */
  #release(): Link[] {
    const links = this.#links ?? [];
    this.#links = undefined;
    for (const link of links) offAbort(link.parent, link.onParentAbort);
    return links;
  }
}

/** A linked signal's controller and what ties it to its parent. */
interface Link {
  readonly parent: AbortSignal;
  readonly onParentAbort: () => void;
  readonly controller: AbortController;
}
