/**
 * A one-shot timer for handshakes. Deno's `read` takes no deadline, so expiry closes the
 * connection, which makes the pending read fail; `expired` then tells why it failed.
 *
 * `linkedSignal()` gives operations that do take a signal (connect) one that fires at the
 * deadline or on shutdown. It is built from a plain AbortController rather than
 * `AbortSignal.any([shutdown, AbortSignal.timeout(ms)])`: measured in Deno 2.9.6, every
 * `AbortSignal.any` against the service's long-lived shutdown signal stays reachable after GC
 * (about 90 bytes each), which over millions of sessions is a leak.
 *
 * The clock and timer are injectable (`options.clock`) so tests can step time exactly instead
 * of sleeping past the deadline and hoping it fired.
 * @module
 */

/** Where a {@linkcode Deadline} reads the time and sets its timer. */
export interface DeadlineClock {
  /** The current time in milliseconds (any fixed origin). */
  now(): number;
  /** Runs `callback` once, `ms` from now; returns a handle for `cancel`. */
  schedule(callback: () => void, ms: number): unknown;
  /** Cancels a scheduled callback; a handle that already ran is ignored. */
  cancel(handle: unknown): void;
}

/** `Date.now` and the global timers: what every session uses. */
export const systemClock: DeadlineClock = {
  now: () => Date.now(),
  schedule: (callback, ms) => setTimeout(callback, ms),
  cancel: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
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
  /** Undo steps of linked signals: run at expiry or `clear()`, whichever comes first. */
  #unlink: (() => void)[] = [];
  #aborters: (() => void)[] = [];

  constructor(ms: number, onExpire: () => void, options: DeadlineOptions = {}) {
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#endsAt = clock.now() + ms;
    this.#timer = clock.schedule(() => {
      this.#expired = true;
      this.#timer = undefined;
      const aborters = this.#aborters;
      this.#aborters = [];
      aborters.forEach((abort) => abort());
      this.#release();
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
    parent.addEventListener("abort", onParentAbort, { once: true });
    this.#unlink.push(() => parent.removeEventListener("abort", onParentAbort));
    this.#aborters.push(() =>
      controller.abort(new DOMException("Deadline passed", "TimeoutError"))
    );
    return controller.signal;
  }

  clear(): void {
    if (this.#timer !== undefined) this.#clock.cancel(this.#timer);
    this.#timer = undefined;
    this.#aborters = [];
    this.#release();
  }

  [Symbol.dispose](): void {
    this.clear();
  }

  #release(): void {
    const unlink = this.#unlink;
    this.#unlink = [];
    unlink.forEach((undo) => undo());
  }
}
