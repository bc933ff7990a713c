import assert from "node:assert/strict";
import { SALT_RETENTION_MS, SaltPool } from "../../protocol/salt_pool.ts";

function salt(n: number): Uint8Array {
  const out = new Uint8Array(32);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

Deno.test("SaltPool refuses a salt seen within the retention window", () => {
  let now = 1_000;
  const pool = new SaltPool({ now: () => now });
  assert.equal(pool.checkAndAdd(salt(1)), "added");
  assert.equal(pool.checkAndAdd(salt(1)), "duplicate");
  assert.equal(pool.checkAndAdd(salt(2)), "added");
  now += SALT_RETENTION_MS - 1;
  assert.equal(pool.checkAndAdd(salt(1)), "duplicate");
  assert.equal(pool.has(salt(1)), true);
  now += 1;
  assert.equal(pool.has(salt(1)), false);
  assert.equal(pool.checkAndAdd(salt(1)), "added", "forgotten after 61 s");
});

Deno.test("SaltPool retains salts for at least 60 s plus timestamp rounding", () => {
  assert.equal(SALT_RETENTION_MS, 61_000);
});

Deno.test("SaltPool when full refuses new salts and forgets none early", () => {
  let now = 0;
  const pool = new SaltPool({ capacity: 3, now: () => now });
  for (let i = 0; i < 3; i++) assert.equal(pool.checkAndAdd(salt(i)), "added");
  now += 10_000;
  assert.equal(pool.checkAndAdd(salt(9)), "full");
  assert.equal(pool.checkAndAdd(salt(0)), "duplicate", "stored salts still count");
  assert.equal(pool.size, 3);
  now += SALT_RETENTION_MS; // every stored salt has expired
  assert.equal(pool.checkAndAdd(salt(9)), "added");
  assert.equal(pool.size, 1);
});

Deno.test("SaltPool expires salts in insertion order", () => {
  let now = 0;
  const pool = new SaltPool({ now: () => now });
  for (let i = 0; i < 100; i++) {
    pool.checkAndAdd(salt(i));
    now += 1_000;
  }
  // Now = 100 s: salts added at 0..39 s have expired (added + 61 s <= 100 s).
  assert.equal(pool.has(salt(39)), false);
  assert.equal(pool.has(salt(40)), true);
  assert.equal(pool.size, 60);
});

Deno.test("SaltPool rejects a bad capacity", () => {
  assert.throws(() => new SaltPool({ capacity: 0 }), RangeError);
  assert.throws(() => new SaltPool({ capacity: 1.5 }), RangeError);
  assert.equal(new SaltPool().capacity, 100_000);
});
