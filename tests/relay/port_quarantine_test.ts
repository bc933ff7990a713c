/**
 * relay/port_quarantine.ts: released ports stay out of new sockets for the quarantine time, the
 * memory is bounded, and a bind that lands on one is retried, the refused sockets closed.
 */
import assert from "node:assert/strict";
import { bindOutside, PortQuarantine } from "../../relay/port_quarantine.ts";

Deno.test("port quarantine: a port is held for the quarantine time, then released", () => {
  let now = 1000;
  const quarantine = new PortQuarantine({ ms: 30_000, now: () => now });
  quarantine.add(40000);
  now += 10_000;
  quarantine.add(40001);
  assert.ok(quarantine.has(40000));
  assert.ok(quarantine.has(40001));
  assert.ok(!quarantine.has(40002));
  now += 20_000; // 30 s after the first
  assert.ok(!quarantine.has(40000), "held 30 s only");
  assert.ok(quarantine.has(40001));
  // Released again: held anew from now.
  quarantine.add(40001);
  now += 15_000;
  assert.ok(quarantine.has(40001));
  assert.equal(quarantine.size, 1);
});

Deno.test("port quarantine: the oldest port leaves first past the bound", () => {
  const quarantine = new PortQuarantine({ max: 3, now: () => 0 });
  for (const port of [1, 2, 3, 4]) quarantine.add(port);
  assert.equal(quarantine.size, 3);
  assert.ok(!quarantine.has(1));
  assert.ok(quarantine.has(2) && quarantine.has(3) && quarantine.has(4));
});

/** A stand-in socket: its port, and whether it was closed. */
function fakeSocket(port: number) {
  return {
    addr: { transport: "udp", hostname: "0.0.0.0", port } as Deno.NetAddr,
    closed: false,
    close() {
      this.closed = true;
    },
  };
}

Deno.test("port quarantine: a bind on a held port is retried; the refused sockets are closed", () => {
  const quarantine = new PortQuarantine({ now: () => 0 });
  quarantine.add(5000);
  quarantine.add(5001);
  const made = [5000, 5001, 5002, 5003].map(fakeSocket);
  let next = 0;
  const socket = bindOutside(() => made[next++]!, quarantine);
  assert.equal(socket.addr.port, 5002);
  assert.deepEqual(made.map((s) => s.closed), [true, true, false, false]);
  assert.equal(next, 3, "no bind after a free port");
});

Deno.test("port quarantine: after the last attempt the socket is kept as it is", () => {
  const quarantine = new PortQuarantine({ now: () => 0 });
  for (const port of [1, 2, 3, 4]) quarantine.add(port);
  const made = [1, 2, 3, 4].map(fakeSocket);
  let next = 0;
  const socket = bindOutside(() => made[next++]!, quarantine, 4);
  assert.equal(socket.addr.port, 4);
  assert.deepEqual(made.map((s) => s.closed), [true, true, true, false]);
});
