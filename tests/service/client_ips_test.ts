/** service/client_ips.ts with a fake clock: the window, the place a refusal does not take, and
 * the fleet gate's fallback to the local window when Redis has no answer. */
import assert from "node:assert/strict";
import { ClientIpWindow, fleetGate } from "../../service/client_ips.ts";

Deno.test("ClientIpWindow admits max IPs per user and forgets an IP after the window", () => {
  let now = 0;
  const window = new ClientIpWindow(1000, () => now);
  assert.equal(window.admit("alice", "192.0.2.1", 2), true);
  assert.equal(window.admit("alice", "192.0.2.2", 2), true);
  assert.equal(window.admit("alice", "192.0.2.3", 2), false);
  assert.equal(window.count("alice"), 2, "a refused IP is not recorded");
  assert.equal(window.admit("bob", "192.0.2.3", 2), true, "per user");
  now = 600;
  assert.equal(window.admit("alice", "192.0.2.1", 2), true, "a known IP, refreshed");
  now = 1000;
  // .2 was last seen at 0: gone; .1 at 600: still there.
  assert.equal(window.admit("alice", "192.0.2.3", 2), true);
  assert.equal(window.admit("alice", "192.0.2.2", 2), false);
  assert.equal(window.count("alice"), 2);
});

Deno.test("ClientIpWindow forgets users whose addresses all left the window", () => {
  let now = 0;
  const window = new ClientIpWindow(1000, () => now);
  for (let i = 0; i < 500; i++) window.admit(`user${i}`, "192.0.2.1", 1);
  assert.equal(window.users, 500);
  now = 2000;
  for (let i = 0; i < 1024; i++) window.admit("alice", "192.0.2.1", 1);
  assert.equal(window.users, 1, "the 500 quiet users were swept");
});

Deno.test("fleetGate: the fleet decides while it answers, the local window when it cannot", async () => {
  let answer: boolean | undefined = true;
  const asked: string[] = [];
  const fleet = {
    admitClientIp(_user: string, ip: string, _max: number, windowMs: number) {
      asked.push(`${ip}/${windowMs}`);
      return Promise.resolve(answer);
    },
  };
  const window = new ClientIpWindow(5000, () => 0);
  const gate = fleetGate(fleet, window);
  assert.equal(await gate.admit("alice", "192.0.2.1", 1), true);
  answer = false;
  assert.equal(await gate.admit("alice", "192.0.2.2", 1), false);
  assert.deepEqual(asked, ["192.0.2.1/5000", "192.0.2.2/5000"]);
  // Redis down: what the fleet admitted before is known here, and the limit still holds.
  answer = undefined;
  assert.equal(await gate.admit("alice", "192.0.2.1", 1), true);
  assert.equal(await gate.admit("alice", "192.0.2.2", 1), false);
});
