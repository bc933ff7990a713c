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

Deno.test("the default filter remembers a salt through a million later ones, in about 8 MiB", () => {
  const filter = new ReplayFilter();
  const random = () => crypto.getRandomValues(new Uint8Array(32));
  const captured = random();
  assertEquals(filter.checkAndAdd(captured), false);
  // 999 999 fresh sessions later (the issue measured forgetting after 20 000-40 000).
  const batch = new Uint8Array(32 * 1000);
  let falsePositives = 0;
  for (let i = 0; i < 999; i++) {
    crypto.getRandomValues(batch);
    for (let j = 0; j < 1000; j++) {
      if (filter.checkAndAdd(batch.subarray(32 * j, 32 * j + 32))) falsePositives++;
    }
  }
  for (let j = 0; j < 999; j++) filter.addOwn(random());
  // A false positive is refused, not added: the count is short by as many.
  assertEquals(filter.size, 1_000_000 - falsePositives);
  assertEquals(filter.checkAndAdd(captured), true, "the first salt is still refused");
  // Sized for 1e-6 per generation: a handful at most over a million checks.
  assertEquals(falsePositives <= 5, true, `${falsePositives} false positives`);
  assertEquals(filter.byteLength <= 8.5 * 1024 * 1024, true, `${filter.byteLength} bytes`);
  // Fresh salts against a full generation: about 1e-6 each.
  let fresh = 0;
  for (let i = 0; i < 100_000; i++) if (filter.checkAndAdd(random())) fresh++;
  assertEquals(fresh <= 3, true, `${fresh} of 100 000 fresh salts refused`);
});
