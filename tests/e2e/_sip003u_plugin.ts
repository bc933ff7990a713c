/**
 * A SIP003u test plugin: it carries TCP and UDP unchanged, so tests can see that ssdeno sends
 * UDP through a plugin when `plugin_mode` says so. With `server` in SS_PLUGIN_OPTIONS it listens
 * on SS_REMOTE_* and forwards to SS_LOCAL_*; otherwise the other way round. Each datagram it
 * carries is one line on stderr ("udp N bytes"), which ssdeno logs under the plugin's name.
 * It binds UDP only with `udp` in its options (a SIP003 plugin leaves UDP to ssdeno).
 */
const env = (name: string) => Deno.env.get(name) ?? "";
const options = env("SS_PLUGIN_OPTIONS").split(";");
const server = options.includes("server");
const listen = server
  ? { hostname: env("SS_REMOTE_HOST"), port: Number(env("SS_REMOTE_PORT")) }
  : { hostname: env("SS_LOCAL_HOST"), port: Number(env("SS_LOCAL_PORT")) };
const to = server
  ? { hostname: env("SS_LOCAL_HOST"), port: Number(env("SS_LOCAL_PORT")) }
  : { hostname: env("SS_REMOTE_HOST"), port: Number(env("SS_REMOTE_PORT")) };

function close(conn: Deno.Conn) {
  try {
    conn.close();
  } catch { /* already closed */ }
}

async function pipe(from: Deno.Conn, into: Deno.Conn) {
  try {
    await from.readable.pipeTo(into.writable, { preventClose: true });
    await (into as Deno.TcpConn).closeWrite();
  } catch {
    close(from);
    close(into);
  }
}

const tcp = Deno.listen(listen);
(async () => {
  for await (const conn of tcp) {
    Deno.connect(to).then((out) => Promise.all([pipe(conn, out), pipe(out, conn)]))
      .catch(() => close(conn));
  }
})();

if (!options.includes("udp")) await new Promise(() => {}); // TCP only: run until ended
const udp = Deno.listenDatagram({ transport: "udp", ...listen });
/** One outward socket per client address, so replies find their way back. */
const outward = new Map<string, Deno.DatagramConn>();
for await (const [data, from] of udp) {
  const client = from as Deno.NetAddr;
  const key = `${client.hostname}:${client.port}`;
  let socket = outward.get(key);
  if (!socket) {
    const created = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    outward.set(key, created);
    socket = created;
    (async () => {
      for await (const [reply] of created) await udp.send(reply, client);
    })();
  }
  console.error(`udp ${data.length} bytes`);
  await socket.send(data, { transport: "udp", ...to });
}
