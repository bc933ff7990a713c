/**
 * Interop of the legacy stream ciphers (and libev's AEAD extras) with the implementations their
 * users still run, both directions, TCP and UDP:
 *
 * ```
 *   curl / SOCKS5 UDP ─▶ libev ss-local -u    ══▶ ssdeno server      ─▶ HTTP fixture / UDP echo
 *   curl / SOCKS5 UDP ─▶ ssdeno local         ══▶ libev ss-server -u ─▶ HTTP fixture / UDP echo
 *   curl / SOCKS5 UDP ─▶ Python sslocal 2.8.2 ══▶ ssdeno server      ─▶ HTTP fixture / UDP echo
 *   curl / SOCKS5 UDP ─▶ ssdeno local         ══▶ Python ssserver    ─▶ HTTP fixture / UDP echo
 * ```
 *
 * libev 3.3.5 lists its stream methods in `ss-server -h` (rc4-md5, aes-*-cfb, aes-*-ctr,
 * camellia-*-cfb, bf-cfb, salsa20, chacha20, chacha20-ietf) and has aes-192-gcm and
 * xchacha20-ietf-poly1305; it takes `-m table` on the command line but then stops with "failed to
 * initialize ciphers", so `table` is tested with Python only. The Python methods are in
 * `_python.ts`.
 * Each path runs `_scenarios.ts`: a 4 MiB download, a 1 MiB echo and a fetch by name, then
 * datagrams of each size echoed byte for byte (up to 2000 bytes with libev, whose UDP buffers
 * are sized for a 1397-byte MTU).
 * @module
 */
import { peerTest, startSsLocal, startSsServer } from "./_peers.ts";
import { PYTHON_METHODS, startPythonLocal, startPythonServer } from "./_python.ts";
import { peerLocalToSsdeno, ssdenoToPeerServer } from "./_scenarios.ts";

const LIBEV_METHODS = [
  "rc4-md5",
  "aes-128-cfb",
  "aes-192-cfb",
  "aes-256-cfb",
  "aes-128-ctr",
  "aes-192-ctr",
  "aes-256-ctr",
  "camellia-128-cfb",
  "camellia-192-cfb",
  "camellia-256-cfb",
  "bf-cfb",
  "salsa20",
  "chacha20",
  "chacha20-ietf",
  "aes-192-gcm",
  "xchacha20-ietf-poly1305",
] as const;
const PASSWORD = "stream-interop-password";
const LIBEV_UDP_SIZES = [1, 64, 512, 1400, 2000];
const PYTHON_UDP_SIZES = [1, 64, 512, 1400, 8192];

peerTest({
  name: "libev ss-local carries TCP and UDP through the ssdeno server with each legacy method",
  peers: ["ss-local", "curl"],
  async fn(t) {
    for (const method of LIBEV_METHODS) {
      await t.step(method, async () => {
        await peerLocalToSsdeno(
          method,
          { password: PASSWORD },
          (port) => startSsLocal(port, { method, password: PASSWORD, udp: true }),
          LIBEV_UDP_SIZES,
        );
      });
    }
  },
});

peerTest({
  name: "the ssdeno local carries TCP and UDP through libev ss-server with each legacy method",
  peers: ["ss-server", "curl"],
  async fn(t) {
    for (const method of LIBEV_METHODS) {
      await t.step(method, async () => {
        await using server = await startSsServer({ method, password: PASSWORD, udp: true });
        await ssdenoToPeerServer(method, { password: PASSWORD }, server, LIBEV_UDP_SIZES);
      });
    }
  },
});

peerTest({
  name: "Python sslocal 2.8.2 carries TCP and UDP through the ssdeno server with each method",
  peers: ["sslocal-py", "curl"],
  async fn(t) {
    for (const method of PYTHON_METHODS) {
      await t.step(method, async () => {
        await peerLocalToSsdeno(
          method,
          { password: PASSWORD },
          (port) => startPythonLocal(port, { method, password: PASSWORD }),
          PYTHON_UDP_SIZES,
        );
      });
    }
  },
});

peerTest({
  name: "the ssdeno local carries TCP and UDP through Python ssserver 2.8.2 with each method",
  peers: ["ssserver-py", "curl"],
  async fn(t) {
    for (const method of PYTHON_METHODS) {
      await t.step(method, async () => {
        await using server = await startPythonServer({ method, password: PASSWORD });
        await ssdenoToPeerServer(method, { password: PASSWORD }, server, PYTHON_UDP_SIZES);
      });
    }
  },
});
