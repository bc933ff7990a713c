import { Deadline } from "../../relay/deadline.ts";
import { assertEquals, assertOk } from "../_assert.ts";

Deno.test("Deadline.linkedSignal() fires with a TimeoutError when the deadline passes", async () => {
  const parent = new AbortController();
  let expired = false;
  const deadline = new Deadline(20, () => expired = true);
  const signal = deadline.linkedSignal(parent.signal);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assertOk(expired && signal.aborted);
  assertEquals((signal.reason as DOMException).name, "TimeoutError");
  parent.abort(); // no longer linked: nothing to assert but that it does not throw
});

Deno.test("Deadline.linkedSignal() follows its parent until cleared, then lets go of it", () => {
  const first = new AbortController();
  const followed = new Deadline(10_000, () => {});
  const signal = followed.linkedSignal(first.signal);
  first.abort("shutdown");
  assertEquals([signal.aborted, signal.reason], [true, "shutdown"]);
  followed.clear();

  const second = new AbortController();
  const cleared = new Deadline(10_000, () => {});
  const quiet = cleared.linkedSignal(second.signal);
  cleared.clear();
  second.abort("shutdown");
  assertEquals(quiet.aborted, false);
});

Deno.test("Deadline.linkedSignal() is aborted at once when the parent already is", () => {
  const parent = new AbortController();
  parent.abort("gone");
  const deadline = new Deadline(10_000, () => {});
  assertEquals(deadline.linkedSignal(parent.signal).reason, "gone");
  deadline.clear();
});
