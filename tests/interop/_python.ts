/**
 * The original Python shadowsocks (2.8.2 from PyPI, installed with its shims by `.ci/peers.sh` as
 * `ssserver-py` and `sslocal-py`) on free loopback ports. Both relay UDP on their TCP port
 * without being asked: 2.8.2 always starts its UDP relay.
 *
 * Methods it has that ssdeno offers (`shadowsocks/encrypt.py` of 2.8.2): `table`, `rc4-md5`,
 * `aes-{128,192,256}-{cfb,ctr}`, `camellia-{128,192,256}-cfb`, `bf-cfb`, `salsa20` and `chacha20`
 * (libsodium). Not `chacha20-ietf` (added after 2.8.2) and no AEAD method.
 * @module
 */
import { type PeerProcess, startPeer } from "./_peers.ts";

/** The stream methods 2.8.2 has, in ssdeno's order. */
export const PYTHON_METHODS = [
  "table",
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
  "chacha20",
  "salsa20",
] as const;

export interface PythonOptions {
  method: string;
  password: string;
}

/**
 * `ssserver-py -s 127.0.0.1 -p PORT -k PASSWORD -m METHOD`, allowed to reach loopback targets
 * (2.8.2 forbids 127.0.0.0/8 and ::1 by default: `--forbidden-ip ""` empties the list).
 */
export function startPythonServer(options: PythonOptions): Promise<PeerProcess> {
  return startPeer("ssserver-py", {
    args: (port) => [
      ...["-s", "127.0.0.1", "-p", String(port)],
      ...["-k", options.password, "-m", options.method, "-t", "60", "--forbidden-ip", ""],
    ],
  });
}

/** `sslocal-py -s 127.0.0.1 -p SERVER_PORT -b 127.0.0.1 -l PORT ...`: SOCKS5 with UDP ASSOCIATE. */
export function startPythonLocal(serverPort: number, options: PythonOptions): Promise<PeerProcess> {
  return startPeer("sslocal-py", {
    args: (port) => [
      ...["-s", "127.0.0.1", "-p", String(serverPort)],
      ...["-b", "127.0.0.1", "-l", String(port)],
      ...["-k", options.password, "-m", options.method, "-t", "60"],
    ],
  });
}
