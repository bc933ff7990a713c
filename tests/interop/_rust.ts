/**
 * shadowsocks-rust peers (`ssserver`, `sslocal`) on free loopback ports, configured with the
 * JSON file format rust reads (which is also ours), so that multi-user `users` lists go through
 * the same keys a rust operator writes.
 * @module
 */
import { type PeerProcess, startPeer } from "./_peers.ts";

export interface RustOptions {
  method: string;
  /** AEAD-2017: any password; 2022: base64 PSK, or `iPSK:uPSK` on a multi-user client. */
  password: string;
  /** Relay UDP as well (`mode: tcp_and_udp`). Default true. */
  udp?: boolean;
  /** The source address of its connections to the server (`outbound_bind_addr`). */
  outboundBindAddr?: string;
}

/** One user of a multi-user 2022 server: `users` entries as rust reads them. */
export interface RustUser {
  name: string;
  /** The user's PSK (uPSK), base64. */
  password: string;
}

const mode = (options: RustOptions) => (options.udp === false ? "tcp_only" : "tcp_and_udp");

/**
 * `ssserver -c config.json` on a free port; with `users`, `password` is the identity PSK of a
 * multi-user (SIP023) server.
 */
export function startRustServer(
  options: RustOptions & { users?: readonly RustUser[] },
): Promise<PeerProcess> {
  return startPeer("ssserver", {
    async args(port, dir) {
      const server: Record<string, unknown> = {
        server: "127.0.0.1",
        server_port: port,
        method: options.method,
        password: options.password,
        mode: mode(options),
      };
      if (options.users) server.users = options.users;
      const path = `${dir}/ssserver.json`;
      await Deno.writeTextFile(path, JSON.stringify({ servers: [server], timeout: 60 }));
      return ["-c", path];
    },
  });
}

/** `sslocal -c config.json`: a SOCKS5 proxy (with UDP ASSOCIATE) on a free port. */
export function startRustLocal(serverPort: number, options: RustOptions): Promise<PeerProcess> {
  return startPeer("sslocal", {
    async args(port, dir) {
      const config = {
        server: "127.0.0.1",
        server_port: serverPort,
        method: options.method,
        password: options.password,
        local_address: "127.0.0.1",
        local_port: port,
        mode: mode(options),
        timeout: 60,
        ...(options.outboundBindAddr ? { outbound_bind_addr: options.outboundBindAddr } : {}),
      };
      const path = `${dir}/sslocal.json`;
      await Deno.writeTextFile(path, JSON.stringify(config));
      return ["-c", path];
    },
  });
}
