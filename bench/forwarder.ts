/**
 * A plain TCP forwarder in Deno, with no protocol and no crypto: the benchmark's "Deno floor"
 * chain (forwarder → forwarder), so the tables show how much of ssdeno's cost is Deno's own.
 *
 * Run: `deno run --allow-net bench/forwarder.ts LISTEN_PORT TARGET_PORT [TARGET_HOST]`: listens
 * on 127.0.0.1 and connects to TARGET_HOST (default 127.0.0.1; the benchmark passes its test
 * host's address when the targets run there).
 * Each direction reads into a 256-byte buffer while reads come back short and a 16 KiB one while
 * they come back full, as ssdeno's relay does, so idle memory compares like with like.
 * @module
 */

const HOST = "127.0.0.1";
const SMALL = 256;
const LARGE = 16 * 1024;

async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const small = new Uint8Array(SMALL);
  let buffer = small;
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      for (let written = 0; written < n;) written += await to.write(buffer.subarray(written, n));
      if (n === buffer.length && buffer === small) buffer = new Uint8Array(LARGE);
      else if (n < SMALL) buffer = small;
    }
    await to.closeWrite();
  } catch {
    // Either side gone: end both.
    closeQuietly(from);
    closeQuietly(to);
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

async function forward(
  client: Deno.TcpConn,
  targetHost: string,
  targetPort: number,
): Promise<void> {
  let target: Deno.TcpConn;
  try {
    target = await Deno.connect({ hostname: targetHost, port: targetPort });
  } catch {
    closeQuietly(client);
    return;
  }
  client.setNoDelay(true);
  target.setNoDelay(true);
  await Promise.all([pump(client, target), pump(target, client)]);
  closeQuietly(client);
  closeQuietly(target);
}

if (import.meta.main) {
  const [listenPort, targetPort] = Deno.args.slice(0, 2).map(Number);
  const targetHost = Deno.args[2] ?? HOST;
  if (!Number.isInteger(listenPort) || !Number.isInteger(targetPort)) {
    console.error("usage: forwarder.ts LISTEN_PORT TARGET_PORT [TARGET_HOST]");
    Deno.exit(2);
  }
  for await (const client of Deno.listen({ hostname: HOST, port: listenPort! })) {
    forward(client, targetHost, targetPort!);
  }
}
