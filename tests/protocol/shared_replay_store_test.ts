import { SharedReplayStore } from "../../protocol/shared_replay_store.ts";
import { SALT_RETENTION_MS } from "../../protocol/salt_pool.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";

const salt = (n: number, size = 32) => {
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, n);
  return out;
};
const random = () => crypto.getRandomValues(new Uint8Array(32));

/** A Worker that opens `store` (tests/protocol/_shared_replay_worker.ts). */
async function openWorker(store: SharedReplayStore) {
  const worker = new Worker(new URL("./_shared_replay_worker.ts", import.meta.url).href, {
    type: "module",
  });
  let next = Promise.withResolvers<unknown>();
  worker.onmessage = (event) => next.resolve(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    next.reject(new Error(event.message));
  };
  const ask = async (message: unknown): Promise<unknown> => {
    next = Promise.withResolvers();
    worker.postMessage(message);
    return await next.promise;
  };
  assertEquals(await ask({ buffer: store.buffer }), "ready");
  return {
    filter: (salts: Uint8Array[], gate?: Int32Array) =>
      ask({ op: "filter", salts, gate }) as Promise<boolean[]>,
    pool: (salts: Uint8Array[], gate?: Int32Array) =>
      ask({ op: "pool", salts, gate }) as Promise<string[]>,
    [Symbol.dispose]: () => worker.terminate(),
  };
}

Deno.test("SharedReplayStore's filter flags a salt seen before and remembers our own salts", () => {
  const { filter } = new SharedReplayStore({ filterCapacity: 10, poolCapacity: 10 });
  assertEquals(filter.checkAndAdd(salt(1)), false);
  assertEquals(filter.checkAndAdd(salt(1)), true);
  filter.addOwn(salt(2));
  assertEquals(filter.checkAndAdd(salt(2)), true);
  assertEquals(filter.size, 2);
});

Deno.test("SharedReplayStore's filter keeps between capacity and twice capacity salts", () => {
  const { filter } = new SharedReplayStore({ filterCapacity: 100, poolCapacity: 10 });
  for (let i = 0; i < 1000; i++) filter.checkAndAdd(salt(i));
  assertOk(filter.size >= 100 && filter.size <= 200, `${filter.size} salts`);
  // The most recent `capacity` salts are always remembered, the oldest are gone.
  for (let i = 900; i < 1000; i++) assertEquals(filter.checkAndAdd(salt(i)), true, `salt ${i}`);
  assertEquals(filter.checkAndAdd(salt(0)), false);
});

Deno.test("SharedReplayStore's filter refuses about one fresh salt in a million when full", () => {
  const { filter, byteLength } = new SharedReplayStore({ poolCapacity: 10 });
  // Both generations full: 2 × 1e6 salts, the worst case for false positives.
  const batch = new Uint8Array(32 * 1000);
  for (let i = 0; i < 2000; i++) {
    crypto.getRandomValues(batch);
    for (let j = 0; j < 1000; j++) filter.addOwn(batch.subarray(32 * j, 32 * j + 32));
  }
  assertEquals(filter.size, 2_000_000);
  let refused = 0;
  const checks = 200_000;
  for (let i = 0; i < checks; i++) if (filter.checkAndAdd(random())) refused++;
  // 2e-6 expected per check (two generations at 1e-6): 0.4 here; 4 would be ten times that.
  assertOk(refused <= 4, `${refused} of ${checks} fresh salts refused`);
  assertOk(byteLength < 7.5 * 1024 * 1024 + 10_000_000, `${byteLength} bytes`);
});

Deno.test("SharedReplayStore's pool refuses a salt for 61 s and forgets it within 122 s", () => {
  let now = 1_000_000;
  const { pool } = new SharedReplayStore({ filterCapacity: 10, poolCapacity: 100, now: () => now });
  assertEquals(pool.checkAndAdd(salt(1)), "added");
  assertEquals(pool.checkAndAdd(salt(1)), "duplicate");
  assertEquals(pool.checkAndAdd(salt(1, 16)), "added", "a 16-byte salt is another salt");
  // Added at the last moment of a generation: the worst case for retention.
  now += SALT_RETENTION_MS - 1;
  assertEquals(pool.checkAndAdd(salt(2)), "added");
  now += 1; // rotation: salt 1 and 2 are now in the previous generation
  assertEquals(pool.checkAndAdd(salt(3)), "added");
  assertEquals(pool.has(salt(1)), true);
  now += SALT_RETENTION_MS - 1;
  assertEquals(pool.checkAndAdd(salt(2)), "duplicate", "salt 2 held 61 s after it was added");
  now += 1; // second rotation: salts 1 and 2 are gone, 3 is in the previous generation
  assertEquals(pool.has(salt(1)), false);
  assertEquals(pool.has(salt(2)), false);
  assertEquals(pool.has(salt(3)), true);
  now += SALT_RETENTION_MS;
  assertEquals(pool.has(salt(3)), false, "forgotten by 122 s");
});

Deno.test("SharedReplayStore's pool when full refuses new salts and forgets none early", () => {
  let now = 0;
  const { pool } = new SharedReplayStore({ filterCapacity: 10, poolCapacity: 3, now: () => now });
  for (let i = 0; i < 3; i++) assertEquals(pool.checkAndAdd(salt(i)), "added");
  assertEquals(pool.checkAndAdd(salt(9)), "full");
  assertEquals(pool.checkAndAdd(salt(0)), "duplicate");
  now += SALT_RETENTION_MS;
  assertEquals(pool.checkAndAdd(salt(9)), "added", "a new generation has room");
  assertEquals(pool.checkAndAdd(salt(0)), "duplicate", "the full one is still held");
  assertEquals(pool.size, 4);
});

Deno.test("SharedReplayStore refuses a buffer it did not make and bad capacities", () => {
  assertThrows(() => new SharedReplayStore({ buffer: new SharedArrayBuffer(4096) }));
  assertThrows(() => new SharedReplayStore({ filterCapacity: 0 }));
  assertThrows(() => new SharedReplayStore({ poolCapacity: 1.5 }));
  const { pool } = new SharedReplayStore({ filterCapacity: 10, poolCapacity: 10 });
  assertThrows(() => pool.checkAndAdd(new Uint8Array(33)));
});

Deno.test("a salt added in one Worker is refused in another and here", async () => {
  const store = new SharedReplayStore({ filterCapacity: 1000, poolCapacity: 1000 });
  using a = await openWorker(store);
  using b = await openWorker(store);
  const first = [salt(1), salt(2)];
  assertEquals(await a.filter(first), [false, false]);
  assertEquals(await b.filter(first), [true, true]);
  assertEquals(store.filter.checkAndAdd(salt(2)), true);
  store.filter.addOwn(salt(3));
  assertEquals(await b.filter([salt(3), salt(4)]), [true, false]);
  assertEquals(await a.pool([salt(5)]), ["added"]);
  assertEquals(await b.pool([salt(5), salt(6)]), ["duplicate", "added"]);
  assertEquals(store.pool.checkAndAdd(salt(6)), "duplicate");
  assertEquals(store.pool.size, 2);
});

Deno.test("the same salts racing in two Workers pass exactly once each", async (t) => {
  const store = new SharedReplayStore({ filterCapacity: 100_000, poolCapacity: 50_000 });
  using a = await openWorker(store);
  using b = await openWorker(store);
  const count = 20_000;
  for (const op of ["filter", "pool"] as const) {
    await t.step(op, async () => {
      const salts = Array.from({ length: count }, random);
      const gate = new Int32Array(new SharedArrayBuffer(8));
      const results = [a[op](salts, gate), b[op](salts, gate)] as Promise<unknown[]>[];
      while (Atomics.load(gate, 1) < 2) await new Promise((resolve) => setTimeout(resolve, 1));
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      const [fromA, fromB] = await Promise.all(results);
      const fresh = op === "filter" ? false : "added";
      let passed = 0;
      for (let i = 0; i < count; i++) {
        const wins = (fromA![i] === fresh ? 1 : 0) + (fromB![i] === fresh ? 1 : 0);
        if (wins !== 1) throw new Error(`salt ${i} passed ${wins} times`);
        passed++;
      }
      assertEquals(passed, count);
    });
  }
});
