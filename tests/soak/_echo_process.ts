/**
 * A TCP echo target run as its own process by the soak tests (tests/soak/_soak.ts): prints its
 * port on stdout, echoes every connection, half-closes after the peer does. It exits when its
 * stdin closes, so it cannot outlive the test that started it; the test also kills it by PID.
 * @module
 */
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);

async function serve(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(4 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      for (let at = 0; at < n;) at += await conn.write(buffer.subarray(at, n));
    }
    await conn.closeWrite();
    while ((await conn.read(buffer)) !== null) { /* wait for the peer's close */ }
  } catch {
    // A session cut mid-test is the test's to notice, on its side.
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

(async () => {
  for await (const conn of listener) serve(conn);
})();

// The parent's end of stdin closing (the test ended or died) ends this process.
for await (const _ of Deno.stdin.readable) { /* nothing is ever sent */ }
Deno.exit(0);
