import { Deadline, type DeadlineClock } from "../../relay/deadline.ts";
import { assertEquals, assertOk } from "../_assert.ts";

/** A clock that moves only when told: `advance(ms)` runs every callback that falls due. */
class ManualClock implements DeadlineClock {
  #now = 1_000_000;
  #next = 1;
  readonly #due = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  schedule(callback: () => void, ms: number): number {
    const handle = this.#next++;
    this.#due.set(handle, { at: this.#now + ms, callback });
    return handle;
  }

  cancel(handle: unknown): void {
    this.#due.delete(handle as number);
  }

  /** Callbacks scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.#due.size;
  }

  advance(ms: number): void {
    this.#now += ms;
    for (const [handle, { at, callback }] of [...this.#due].sort((a, b) => a[1].at - b[1].at)) {
      if (at > this.#now) break;
      this.#due.delete(handle);
      callback();
    }
  }
}

Deno.test("Deadline expires exactly at its time, not a millisecond before, and only once", () => {
  const clock = new ManualClock();
  let expiries = 0;
  const deadline = new Deadline(300, () => expiries++, { clock });
  const signal = deadline.linkedSignal(new AbortController().signal);
  clock.advance(299);
  assertEquals([deadline.expired, expiries, signal.aborted, deadline.remainingMs], [
    false,
    0,
    false,
    1,
  ]);
  clock.advance(1);
  assertEquals([deadline.expired, expiries, signal.aborted], [true, 1, true]);
  assertEquals((signal.reason as DOMException).name, "TimeoutError");
  clock.advance(10_000);
  assertEquals(expiries, 1);
  deadline.clear(); // after expiry: nothing left to cancel, and no throw
});

Deno.test("Deadline.remainingMs counts down with the clock and never goes below 1", () => {
  const clock = new ManualClock();
  const deadline = new Deadline(1000, () => {}, { clock });
  assertEquals(deadline.remainingMs, 1000);
  clock.advance(400);
  assertEquals(deadline.remainingMs, 600);
  clock.advance(600);
  assertEquals(deadline.remainingMs, 1);
});

Deno.test("Deadline.clear() cancels the timer: no expiry, no abort, nothing left scheduled", () => {
  const clock = new ManualClock();
  let expiries = 0;
  const deadline = new Deadline(300, () => expiries++, { clock });
  const signal = deadline.linkedSignal(new AbortController().signal);
  clock.advance(299);
  deadline.clear();
  assertEquals(clock.pending, 0);
  clock.advance(10_000);
  assertEquals([deadline.expired, expiries, signal.aborted], [false, 0, false]);
});

Deno.test("Deadline.linkedSignal() after expiry is aborted at once with a TimeoutError", () => {
  const clock = new ManualClock();
  const deadline = new Deadline(5, () => {}, { clock });
  clock.advance(5);
  const signal = deadline.linkedSignal(new AbortController().signal);
  assertOk(signal.aborted);
  assertEquals((signal.reason as DOMException).name, "TimeoutError");
});

Deno.test("Deadline.linkedSignal() follows its parent until cleared, then lets go of it", () => {
  const clock = new ManualClock();
  const first = new AbortController();
  const followed = new Deadline(10_000, () => {}, { clock });
  const signal = followed.linkedSignal(first.signal);
  first.abort("shutdown");
  assertEquals([signal.aborted, signal.reason], [true, "shutdown"]);
  followed.clear();

  const second = new AbortController();
  const cleared = new Deadline(10_000, () => {}, { clock });
  const quiet = cleared.linkedSignal(second.signal);
  cleared.clear();
  second.abort("shutdown");
  assertEquals(quiet.aborted, false);
});

Deno.test("Deadline.linkedSignal() is aborted at once when the parent already is", () => {
  const clock = new ManualClock();
  const parent = new AbortController();
  parent.abort("gone");
  const deadline = new Deadline(10_000, () => {}, { clock });
  assertEquals(deadline.linkedSignal(parent.signal).reason, "gone");
  deadline.clear();
});

Deno.test("Deadline on the system clock fires its callback once the time has passed", async () => {
  // The default clock, end to end: waits for the callback itself (bounded), not a sleep.
  const started = Date.now();
  const fired = Promise.withResolvers<number>();
  const deadline = new Deadline(30, () => fired.resolve(Date.now()));
  const guard = setTimeout(() => fired.reject(new Error("Deadline never fired")), 5000);
  try {
    const at = await fired.promise;
    assertOk(deadline.expired);
    assertOk(at - started >= 29, `fired after ${at - started} ms of a 30 ms deadline`);
  } finally {
    clearTimeout(guard);
  }
});
