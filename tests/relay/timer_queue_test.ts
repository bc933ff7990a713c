/**
 * relay/timer_queue.ts: timers sharing one runtime timer per duration. A timer due later acts
 * as a fence: when it has run, an earlier one that was not stopped has run too.
 */
import assert from "node:assert/strict";
import { restartTimer, settledWithin, startTimer, stopTimer } from "../../relay/timer_queue.ts";

/** Resolves when a timer of `ms` started now has run. */
function fence(ms: number): Promise<void> {
  return new Promise((resolve) => startTimer(resolve, ms));
}

Deno.test("timers of one duration run in the order they were started, each once", async () => {
  const ran: number[] = [];
  for (const n of [1, 2, 3]) startTimer(() => ran.push(n), 5);
  await fence(20);
  assert.deepEqual(ran, [1, 2, 3]);
});

Deno.test("a stopped timer never runs, whatever its duration (below 1 ms too)", async () => {
  let ran = 0;
  for (const ms of [0, 0.5, 1, 5]) stopTimer(startTimer(() => ran++, ms));
  await fence(20);
  assert.equal(ran, 0);
});

Deno.test("a restarted timer runs after the ones started before its restart", async () => {
  const ran: string[] = [];
  const first = startTimer(() => ran.push("first"), 5);
  startTimer(() => ran.push("second"), 5);
  restartTimer(first);
  await fence(20);
  assert.deepEqual(ran, ["second", "first"]);
});

Deno.test("settledWithin: true when the promise settles first (rejected too), false after the wait", async () => {
  assert.equal(await settledWithin(Promise.resolve(1), 1000), true);
  assert.equal(await settledWithin(Promise.reject(new Error("gone")), 1000), true);
  assert.equal(await settledWithin(new Promise(() => {}), 5), false);
});
