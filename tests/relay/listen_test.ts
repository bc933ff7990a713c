import { assertEquals, assertOk } from "../_assert.ts";
import { ACCEPT_QUEUES, listenTcp } from "../../relay/listen.ts";

function closeAll(listeners: Deno.TcpListener[]): void {
  for (const listener of listeners) listener.close();
}

Deno.test("listenTcp() binds several sockets to one port, all of which accept", async () => {
  const listeners = listenTcp("127.0.0.1", 0);
  try {
    assertEquals(listeners.length, ACCEPT_QUEUES);
    const ports = new Set(listeners.map((l) => (l.addr as Deno.NetAddr).port));
    assertEquals(ports.size, 1);
    const port = [...ports][0]!;
    // The kernel spreads connections by address hash: enough of them reach every socket.
    const reached = new Set<number>();
    const accepting = listeners.map(async (listener, index) => {
      for await (const conn of listener) {
        reached.add(index);
        conn.close();
      }
    });
    for (let i = 0; i < 200 && reached.size < listeners.length; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.read(new Uint8Array(1)).catch(() => null);
      conn.close();
    }
    assertEquals(reached.size, listeners.length);
    closeAll(listeners);
    await Promise.allSettled(accepting);
  } finally {
    try {
      closeAll(listeners);
    } catch {
      // Closed above.
    }
  }
});

Deno.test("listenTcp() refuses a port that is already taken, as Deno.listen does", () => {
  const first = listenTcp("127.0.0.1", 0);
  const port = (first[0]!.addr as Deno.NetAddr).port;
  try {
    let error: unknown;
    try {
      closeAll(listenTcp("127.0.0.1", port));
    } catch (caught) {
      error = caught;
    }
    assertOk(error instanceof Deno.errors.AddrInUse, `expected AddrInUse, got ${error}`);
    const plain = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const plainPort = (plain.addr as Deno.NetAddr).port;
    try {
      let second: unknown;
      try {
        closeAll(listenTcp("127.0.0.1", plainPort));
      } catch (caught) {
        second = caught;
      }
      assertOk(second instanceof Deno.errors.AddrInUse, `expected AddrInUse, got ${second}`);
    } finally {
      plain.close();
    }
  } finally {
    closeAll(first);
  }
});

Deno.test("listenTcp() with one queue is a plain listener", () => {
  const listeners = listenTcp("127.0.0.1", 0, 1);
  try {
    assertEquals(listeners.length, 1);
  } finally {
    closeAll(listeners);
  }
});
