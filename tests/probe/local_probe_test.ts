/** The local side facing a bad server: garbage after the salt ends the session, not the process. */
import { writeAll } from "../../relay/io.ts";
import { assertEquals } from "../_assert.ts";
import { readAll, socksConnect, startChain, waitFor } from "../e2e/_harness.ts";

Deno.test("a server salt followed by garbage ends the local session with ERR_CIPHER", async () => {
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const fakeServer = (async () => {
    const conn = await fake.accept();
    await conn.read(new Uint8Array(4096));
    await writeAll(conn, crypto.getRandomValues(new Uint8Array(32 + 100)));
    await readAll(conn).catch(() => new Uint8Array(0));
    conn.close();
  })();
  const chain = await startChain("chacha20-ietf-poly1305", {
    local: { serverPort: fake.addr.port },
  });
  try {
    const { conn } = await socksConnect(chain.local.addr.port, {
      type: "domain",
      host: "example.com",
      port: 443,
    });
    await writeAll(conn, new TextEncoder().encode("hello"));
    assertEquals((await readAll(conn)).length, 0);
    conn.close();
    await waitFor(() => chain.local.stats.statuses.ERR_CIPHER === 1);
    await fakeServer;
  } finally {
    fake.close();
    await chain.close();
  }
});
