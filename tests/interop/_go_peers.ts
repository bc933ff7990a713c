/**
 * The Go peers on free loopback ports: sing-box (the core inside most phone and desktop clients)
 * as a client (`mixed` inbound → `shadowsocks` outbound) or a server (`shadowsocks` inbound →
 * `direct` outbound), and outline-ss-server with its multi-key YAML config.
 * @module
 */
import { type PeerProcess, startPeer } from "./_peers.ts";

/** One user of a multi-user 2022 inbound, as sing-box and rust name the fields. */
export interface PeerUser {
  name: string;
  password: string;
}

/** `sing-box run -c config.json` with one inbound and one outbound. */
function startSingBox(inbound: object, outbound: object): Promise<PeerProcess> {
  return startPeer("sing-box", {
    async args(port, dir) {
      const config = {
        log: { level: "warn" },
        inbounds: [{ ...inbound, listen: "127.0.0.1", listen_port: port }],
        outbounds: [outbound],
      };
      const path = `${dir}/sing-box.json`;
      await Deno.writeTextFile(path, JSON.stringify(config));
      return ["run", "--disable-color", "-c", path];
    },
  });
}

/** sing-box as a client: SOCKS5/HTTP (`mixed`) on a free port, through the server at `serverPort`. */
export function startSingBoxClient(
  serverPort: number,
  options: { method: string; password: string },
): Promise<PeerProcess> {
  return startSingBox({ type: "mixed", tag: "in" }, {
    type: "shadowsocks",
    tag: "ss",
    server: "127.0.0.1",
    server_port: serverPort,
    method: options.method,
    password: options.password,
  });
}

/** sing-box as a server on a free port, TCP and UDP; with `users`, `password` is the iPSK. */
export function startSingBoxServer(
  options: { method: string; password: string; users?: readonly PeerUser[] },
): Promise<PeerProcess> {
  return startSingBox({
    type: "shadowsocks",
    tag: "in",
    method: options.method,
    password: options.password,
    ...(options.users ? { users: options.users } : {}),
  }, { type: "direct", tag: "direct" });
}

/** One access key of an outline-ss-server port. */
export interface OutlineKey {
  id: string;
  cipher: string;
  secret: string;
}

/**
 * `outline-ss-server -config keys.yml` on a free port, TCP and UDP, with every key on that port
 * (Outline finds a client's key by trial decryption). Outline dials only public addresses, so
 * its targets are on the test host (`../_target_host.ts`).
 */
export function startOutlineServer(keys: readonly OutlineKey[]): Promise<PeerProcess> {
  return startPeer("outline-ss-server", {
    async args(port, dir) {
      // JSON is YAML: the file is Outline's documented `keys` format.
      const config = { keys: keys.map((key) => ({ ...key, port })) };
      const path = `${dir}/outline.yml`;
      await Deno.writeTextFile(path, JSON.stringify(config));
      return ["-config", path, "-replay_history", "10000"];
    },
  });
}

/** go-shadowsocks2's names of the AEAD-2017 methods (it has no others). */
const GO_SS2_CIPHER: Record<string, string> = {
  "aes-128-gcm": "AEAD_AES_128_GCM",
  "aes-256-gcm": "AEAD_AES_256_GCM",
  "chacha20-ietf-poly1305": "AEAD_CHACHA20_POLY1305",
};

function goSs2Flags(method: string, password: string): string[] {
  const cipher = GO_SS2_CIPHER[method];
  if (!cipher) throw new Error(`go-shadowsocks2 has no ${method}`);
  return ["-cipher", cipher, "-password", password];
}

/** go-shadowsocks2 as a server (TCP and UDP) on a free port. */
export function startGoSs2Server(options: { method: string; password: string }) {
  return startPeer("go-shadowsocks2", {
    args: (port) => [
      ...["-s", `127.0.0.1:${port}`, "-udp"],
      ...goSs2Flags(options.method, options.password),
    ],
  });
}

/** go-shadowsocks2 as a client: SOCKS5 (with UDP) on a free port, through `serverPort`. */
export function startGoSs2Client(
  serverPort: number,
  options: { method: string; password: string },
) {
  return startPeer("go-shadowsocks2", {
    args: (port) => [
      ...["-c", `127.0.0.1:${serverPort}`, "-socks", `127.0.0.1:${port}`, "-u"],
      ...goSs2Flags(options.method, options.password),
    ],
  });
}
