import assert from "node:assert/strict";
import { NatTable, type RemovalReason } from "../../relay/nat_table.ts";
import { UdpSocket } from "../../relay/udp_socket.ts";

/** An entry that records whether it was closed. */
class Entry {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

function table(capacity: number, idleMs = 1000) {
  let now = 0;
  const removed: [string, RemovalReason][] = [];
  const nat = new NatTable<Entry>({
    capacity,
    idleMs,
    now: () => now,
    onRemove: (key, _entry, reason) => removed.push([key, reason]),
  });
  return { nat, removed, advance: (ms: number) => (now += ms) };
}

Deno.test("NatTable evicts and closes the least recently used entry at capacity", () => {
  const { nat, removed } = table(3);
  const entries = ["a", "b", "c"].map((key) => {
    const entry = new Entry();
    nat.set(key, entry);
    return entry;
  });
  nat.get("a"); // a is now the most recently used; b is the oldest
  const d = new Entry();
  nat.set("d", d);
  assert.equal(nat.size, 3);
  assert.deepEqual(nat.keys(), ["c", "a", "d"]);
  assert.deepEqual(removed, [["b", "lru"]]);
  assert.deepEqual(entries.map((entry) => entry.closed), [false, true, false]);
  nat.close();
});

Deno.test("NatTable expires idle entries by the injected clock, and use keeps them", () => {
  const { nat, removed, advance } = table(10, 1000);
  const a = new Entry();
  const b = new Entry();
  nat.set("a", a);
  advance(600);
  nat.set("b", b);
  advance(300);
  nat.touch("a", a); // a used at 900
  advance(200); // now 1100: b idle 500, a idle 200
  assert.equal(nat.sweep(), 0);
  advance(1000); // now 2100: both idle
  assert.equal(nat.sweep(), 2);
  assert.ok(a.closed && b.closed);
  assert.deepEqual(removed, [["b", "idle"], ["a", "idle"]]);
  assert.equal(nat.size, 0);
  nat.close();
});

Deno.test("NatTable.get() treats an expired entry as missing and closes it", () => {
  const { nat, removed, advance } = table(2, 100);
  const a = new Entry();
  nat.set("a", a);
  advance(100);
  assert.equal(nat.has("a"), false);
  assert.equal(nat.get("a"), undefined);
  assert.ok(a.closed);
  assert.deepEqual(removed, [["a", "idle"]]);
  nat.close();
});

Deno.test("NatTable.touch() and delete() ignore an entry that was already replaced", () => {
  const { nat, removed } = table(2);
  const old = new Entry();
  nat.set("a", old);
  const replacement = new Entry();
  nat.set("a", replacement);
  assert.ok(old.closed);
  assert.equal(nat.delete("a", old), false);
  nat.touch("a", old);
  assert.equal(nat.get("a"), replacement);
  assert.equal(nat.delete("a", replacement), true);
  assert.ok(replacement.closed);
  assert.deepEqual(removed, [["a", "deleted"], ["a", "deleted"]]);
  nat.close();
});

Deno.test("NatTable.close() closes every entry, and later entries at once", () => {
  const { nat, removed } = table(5);
  const a = new Entry();
  nat.set("a", a);
  nat.close();
  assert.ok(a.closed);
  const late = new Entry();
  nat.set("late", late);
  assert.ok(late.closed);
  assert.equal(nat.size, 0);
  assert.deepEqual(removed, [["a", "closed"], ["late", "closed"]]);
});

Deno.test("NatTable closes the UDP sockets it evicts", async () => {
  const { nat } = table(2);
  const sockets = [0, 1, 2].map(() => UdpSocket.bind("127.0.0.1", 0));
  const receiving = sockets.map((socket) => socket.receive(new Uint8Array(16)));
  sockets.forEach((socket, i) => nat.set(`client-${i}`, socket));
  assert.equal(sockets[0]!.closed, true);
  assert.equal(await receiving[0], null);
  assert.deepEqual(sockets.map((socket) => socket.closed), [true, false, false]);
  nat.close();
  assert.deepEqual(await Promise.all(receiving), [null, null, null]);
});

Deno.test("NatTable rejects a capacity or timeout that is not positive", () => {
  assert.throws(() => new NatTable({ capacity: 0, idleMs: 1 }), RangeError);
  assert.throws(() => new NatTable({ capacity: 1.5, idleMs: 1 }), RangeError);
  assert.throws(() => new NatTable({ capacity: 1, idleMs: 0 }), RangeError);
});

Deno.test("NatTable's sweep timer expires entries and stops on close", async () => {
  const nat = new NatTable<Entry>({ capacity: 4, idleMs: 20, sweepIntervalMs: 10 });
  const a = new Entry();
  nat.set("a", a);
  for (let i = 0; i < 100 && !a.closed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(a.closed);
  nat.close();
});

Deno.test("NatTable.peek() returns a live entry without using it, and hides an expired one", () => {
  const { nat, removed, advance } = table(2, 100);
  const a = new Entry();
  nat.set("a", a);
  nat.set("b", new Entry());
  advance(60);
  assert.equal(nat.peek("a"), a);
  assert.deepEqual(nat.keys(), ["a", "b"]); // peeking is not a use
  advance(40);
  assert.equal(nat.peek("a"), undefined);
  assert.deepEqual(removed, []); // and does not remove either
  assert.equal(nat.peek("missing"), undefined);
  nat.close();
});
