/**
 * Timers that share one runtime timer per duration. Every session has a few timers (handshake
 * deadline, idle timeout, the tunnel's first-bytes wait), and all the timers of one purpose in a
 * service have the same duration, so they expire in the order they were started: a queue per
 * duration, in insertion order (a `Set`), needs only one `setTimeout`, armed for its head.
 *
 * Why, for memory: a pending `setTimeout` costs about 1 KiB (a `Timeout` object, its closure and
 * the runtime's entry) and every idle session holds one for its idle timeout; an entry here costs
 * an object of three fields and a `Set` slot. Starting and stopping one is also cheaper than a
 * runtime timer, which counts in connection setup (bench/throughput.ts).
 *
 * ```
 * queue(ms): [entry at=t1] → [entry at=t2] → … (t1 ≤ t2 ≤ …)     one setTimeout, for t1
 * ```
 *
 * `restartTimer` moves an entry to the back with a new expiry (`ms` from now), which keeps the
 * order. Callbacks run in expiry order, never before their time. A queue whose last entry goes
 * keeps its runtime timer, unreferenced (it keeps no process alive), until it fires: the next
 * session then needs no new one, and when it fires with nothing to run the queue goes.
 * @module
 */

/** A started timer: pass it to `stopTimer` or `restartTimer`. */
export interface QueuedTimer {
  readonly ms: number;
}

class Entry implements QueuedTimer {
  readonly ms: number;
  readonly callback: () => void;
  at = 0;

  constructor(ms: number, callback: () => void) {
    this.ms = ms;
    this.callback = callback;
  }
}

class Queue {
  readonly #ms: number;
  readonly entries = new Set<Entry>();
  /** The runtime timer, armed for the head (or earlier); kept, unreferenced, while empty. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #firing = false;

  constructor(ms: number) {
    this.#ms = ms;
  }

  add(entry: Entry): void {
    entry.at = performance.now() + this.#ms;
    this.entries.add(entry);
    if (this.#firing) return;
    if (this.#timer === undefined) this.#arm(this.#ms);
    else if (this.entries.size === 1) Deno.refTimer(this.#timer);
  }

  delete(entry: Entry): boolean {
    if (!this.entries.delete(entry)) return false;
    // Emptied: the timer stays armed but no longer keeps the process alive. One session after
    // another (each emptying the queue) then costs no timer of its own; the timer, firing
    // early for the next entry or finding none, re-arms or goes.
    if (this.entries.size === 0 && !this.#firing && this.#timer !== undefined) {
      Deno.unrefTimer(this.#timer);
    }
    return true;
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(0, Math.ceil(delay)));
  }

  readonly #fire = () => {
    this.#timer = undefined;
    this.#firing = true;
    const now = performance.now();
    try {
      for (const entry of this.entries) {
        if (entry.at > now) break;
        this.entries.delete(entry);
        entry.callback();
      }
    } finally {
      this.#firing = false;
      const next = this.entries.values().next();
      // Nothing left: the queue leaves the registry (durations may be many).
      if (next.done) queues.delete(this.#ms);
      else this.#arm(next.value.at - performance.now());
    }
  };
}

/** The queue of each duration in use (removed when empty). */
const queues = new Map<number, Queue>();

function queueOf(ms: number): Queue {
  let queue = queues.get(ms);
  if (queue === undefined) queues.set(ms, queue = new Queue(ms));
  return queue;
}

/**
 * Runs `callback` once, `ms` from now (at least 1 ms: a callback that starts a timer of its own
 * duration never runs in the same pass), unless stopped first.
 */
export function startTimer(callback: () => void, ms: number): QueuedTimer {
  const entry = new Entry(Math.max(1, ms), callback);
  // Queued by the entry's own duration: stop and restart look it up there.
  queueOf(entry.ms).add(entry);
  return entry;
}

/**
 * True once `pending` settles (fulfilled or rejected: a later await of it reports which), false
 * when `ms` passes first; the wait is a queued timer.
 */
export function settledWithin(pending: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = startTimer(() => resolve(false), ms);
    const settled = () => {
      stopTimer(timer);
      resolve(true);
    };
    pending.then(settled, settled);
  });
}

/** Cancels `timer`; a timer that already ran or was stopped is ignored. */
export function stopTimer(timer: QueuedTimer): void {
  queues.get(timer.ms)?.delete(timer as Entry);
}

/**
 * Makes `timer` expire `ms` (its duration) from now, whether it is pending or not (one that
 * already ran runs again).
 */
export function restartTimer(timer: QueuedTimer): void {
  const queue = queueOf(timer.ms);
  queue.entries.delete(timer as Entry);
  queue.add(timer as Entry);
}
