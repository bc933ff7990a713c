import { ReplayFilter } from "../../protocol/replay_filter.ts";
import { assertEquals, assertThrows } from "../_assert.ts";

const salt = (n: number) =>
  new Uint8Array(32).fill(0).map((_, i) => (i < 4 ? (n >> (8 * i)) & 0xff : 0));

Deno.test("ReplayFilter flags a salt seen before and remembers our own salts", () => {
  const filter = new ReplayFilter(10);
  assertEquals(filter.checkAndAdd(salt(1)), false);
  assertEquals(filter.checkAndAdd(salt(1)), true);
  filter.addOwn(salt(2));
  assertEquals(filter.checkAndAdd(salt(2)), true);
});

Deno.test("ReplayFilter keeps between capacity and twice capacity salts", () => {
  const filter = new ReplayFilter(100);
  for (let i = 0; i < 1000; i++) filter.checkAndAdd(salt(i));
  assertEquals(filter.size <= 200, true);
  assertEquals(filter.size >= 100, true);
  // The most recent `capacity` salts are always remembered.
  for (let i = 900; i < 1000; i++) assertEquals(filter.checkAndAdd(salt(i)), true, `salt ${i}`);
  assertEquals(filter.checkAndAdd(salt(0)), false);
});

Deno.test("ReplayFilter refuses a capacity below one", () => {
  assertThrows(() => new ReplayFilter(0));
});
