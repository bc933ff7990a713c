import { createCountersMemory, ListenerCounters } from "../../service/shared_stats.ts";
import { createUdpStats } from "../../relay/udp_stats.ts";
import { assertEquals } from "../_assert.ts";

/** The main isolate's counters (row 0) and a worker's (row 1), over the same memory. */
function pair() {
  const main = new ListenerCounters(createCountersMemory(2), 0);
  main.user("alice");
  // What the worker gets posted: the memory, with alice's buffer in it.
  const worker = new ListenerCounters(structuredClone(main.memory), 1);
  return { main, worker };
}

Deno.test("ListenerCounters: each isolate counts into its row, totals are their sum", () => {
  const { main, worker } = pair();
  main.stats.statuses.OK++;
  worker.stats.statuses.OK += 2;
  worker.stats.statuses.ERR_REPLAY++;
  main.stats.active++;
  worker.stats.active += 3;
  worker.stats.active--;
  main.stats.bytesUplink += 100;
  worker.stats.bytesUplink += 50;
  worker.stats.bytesDownlink += 7;
  worker.stats.acceptErrors.peer++;
  for (const { totals } of [main, worker]) {
    assertEquals(totals.statuses.OK, 3);
    assertEquals(totals.statuses.ERR_REPLAY, 1);
    assertEquals(totals.active, 3);
    assertEquals(totals.bytesUplink, 150);
    assertEquals(totals.bytesDownlink, 7);
    assertEquals(totals.acceptErrors.peer, 1);
  }
  assertEquals(main.stats.statuses.OK, 1, "a row is the isolate's own");
  assertEquals(Object.values(main.totals.statuses).reduce((a, b) => a + b), 4);
  assertEquals(main.perIsolate(), [2, 5]);
  worker.forgetLive(1);
  assertEquals(main.totals.active, 1);
});

Deno.test("ListenerCounters: per-user counters add up; assigning a total adjusts, not a row", () => {
  const { main, worker } = pair();
  main.user("alice").bytesUplink += 10;
  worker.user("alice").bytesUplink += 5;
  worker.user("alice").sessions++;
  worker.user("alice").lastSeen = 2000;
  main.user("alice").lastSeen = 1000;
  const alice = main.totals.users["alice"]!;
  assertEquals([alice.bytesUplink, alice.sessions, alice.lastSeen], [15, 1, 2000]);
  assertEquals(worker.userBytes("alice", false), 15);
  // The API clears, the state file restores: the totals read what was assigned.
  alice.bytesUplink = alice.sessions = 0;
  assertEquals([alice.bytesUplink, alice.sessions], [0, 0]);
  assertEquals(main.user("alice").bytesUplink, 10, "the main isolate's row is untouched");
  worker.user("alice").bytesUplink += 3;
  assertEquals(alice.bytesUplink, 3);
  assertEquals(worker.userBytes("alice", false), 3, "a worker's data limit sees the clear");
  alice.bytesDownlink += 1000;
  alice.lastSeen = Math.max(alice.lastSeen, 5000);
  assertEquals([alice.bytesDownlink, alice.lastSeen], [1000, 5000]);
  assertEquals(Object.keys(main.totals.users), ["alice"]);
  assertEquals(Object.keys(worker.stats.users), ["alice"]);
});

Deno.test("ListenerCounters: a user added later reaches a worker with its memory", () => {
  const { main, worker } = pair();
  main.user("bob").sessions++;
  worker.adopt(structuredClone(main.memory.users));
  worker.user("bob").sessions++;
  assertEquals(main.totals.users["bob"]!.sessions, 2);
});

Deno.test("ListenerCounters: workers see the main isolate's UDP bytes for data limits", () => {
  const { main, worker } = pair();
  const udp = createUdpStats(["alice"]);
  udp.users["alice"]!.bytesUplink = 40;
  udp.users["alice"]!.bytesDownlink = 2;
  worker.user("alice").bytesDownlink += 8;
  main.mirrorUdp(udp);
  assertEquals(worker.userBytes("alice", true), 50);
  assertEquals(main.userBytes("alice", false), 8, "the main isolate reads its UDP live");
});
