import { assertEquals, assertOk } from "../_assert.ts";
import { listenTcp } from "../../relay/listen.ts";

/** More than Deno's default backlog of 511: without a deeper queue some SYNs are dropped. */
const BURST = 600;

Deno.test("listenTcp() queues a burst larger than Deno's default backlog", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.TcpConn[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // Nothing accepts yet: every connection must fit in the kernel's accept queue. A dropped SYN
    // is resent after a second, so a connect still pending at 900 ms means the queue overflowed.
    const connects = Array.from({ length: BURST }, async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
    });
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 900);
    });
    const outcome = await Promise.race([Promise.all(connects).then(() => "done"), timeout]);
    assertEquals(outcome, "done", `${conns.length} of ${BURST} connected in time`);
    await Promise.allSettled(connects);
  } finally {
    clearTimeout(timer);
    listener.close();
    for (const conn of conns) conn.close();
  }
});

Deno.test("listenTcp() refuses a port that is already taken", () => {
  const first = listenTcp("127.0.0.1", 0);
  try {
    let error: unknown;
    try {
      listenTcp("127.0.0.1", (first.addr as Deno.NetAddr).port).close();
    } catch (caught) {
      error = caught;
    }
    assertOk(error instanceof Deno.errors.AddrInUse, `expected AddrInUse, got ${error}`);
  } finally {
    first.close();
  }
});
