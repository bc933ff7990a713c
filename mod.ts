/**
 * ssdeno as a library: start a Shadowsocks server, a SOCKS5 local or a tunnel inside your own
 * Deno program, list the supported methods, and read or write `ss://` URIs.
 *
 * ```ts
 * import { METHOD_NAMES, startLocal, startServer } from "./mod.ts";
 *
 * const common = {
 *   method: "chacha20-ietf-poly1305",
 *   password: "correct horse battery staple",
 *   timeout: 300,
 *   handshakeTimeout: 10,
 *   mode: "tcp_only",
 *   noDelay: true,
 *   udpTimeout: 300,
 *   udpMaxAssociations: 2048,
 * } as const;
 * const server = await startServer({
 *   ...common,
 *   address: "127.0.0.1",
 *   port: 0,
 *   allowPrivateTargets: false,
 *   ipv6First: false,
 * });
 * const local = await startLocal({
 *   ...common,
 *   server: "127.0.0.1",
 *   serverPort: server.addr.port,
 *   localAddress: "127.0.0.1",
 *   localPort: 0,
 * });
 * console.log(`SOCKS5 on port ${local.addr.port}; methods: ${METHOD_NAMES.join(", ")}`);
 * await local.close();
 * await server.close();
 * ```
 * @module
 */
export { startServer } from "./server.ts";
export { startLocal } from "./local.ts";
export { startTunnel } from "./tunnel.ts";
export type { RunningService, ServiceOptions, ServiceStats } from "./relay/service.ts";
export type {
  CommonConfig,
  LocalConfig,
  Mode,
  ServerConfig,
  TunnelConfig,
} from "./config/types.ts";
export { findMethod, METHOD_NAMES, type MethodInfo } from "./crypto/methods.ts";
export { decodeSip002, encodeSip002, type Sip002Config } from "./protocol/sip002.ts";
export { createLogger, type Logger, type LogLevel } from "./relay/log.ts";
export type { SessionStatus } from "./protocol/errors.ts";
