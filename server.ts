/**
 * The server role: accept Shadowsocks connections, authenticate the first chunk, read the
 * target address, connect to it directly and relay.
 *
 * Stages of one session:
 *   1. read salt + first chunk (handshake deadline running) — bad tag → probe handling
 *   2. replay check on the salt (only once the chunk authenticated)
 *   3. decode the target address from the decrypted stream (may span chunks)
 *   4. policy check, resolve, connect
 *   5. relay: uplink = client → target (decrypting), downlink = target → client (encrypting)
 *
 * Probe handling: after an authentication or parse failure the server sends nothing and does not
 * close early; it reads and discards until the client closes or the handshake deadline passes.
 * @module
 */
import type { ServerConfig } from "./config/types.ts";
import { evpBytesToKey } from "./crypto/kdf.ts";
import { findMethod, type MethodInfo } from "./crypto/methods.ts";
import { type Address, decodeAddress, formatAddress } from "./protocol/address.ts";
import { ProtocolError, type SessionStatus } from "./protocol/errors.ts";
import { ReplayFilter } from "./protocol/replay_filter.ts";
import { Deadline } from "./relay/deadline.ts";
import { connectDirect } from "./relay/direct.ts";
import { closeQuietly, concatBytes, writeAll } from "./relay/io.ts";
import { type Logger, silentLogger } from "./relay/log.ts";
import { relay } from "./relay/pipe.ts";
import { type RunningService, serveConnections, type ServiceOptions } from "./relay/service.ts";
import { ShadowsocksStream } from "./relay/shadowsocks_stream.ts";

export type { RunningService, ServiceOptions };

/** Longest address header: ATYP + length + 255-byte name + port. */
const MAX_ADDRESS_LENGTH = 1 + 1 + 255 + 2;
/** Bytes discarded per read while draining a failed handshake. */
const DRAIN_BUFFER_SIZE = 4096;

/** What a server session needs, fixed for the listener's lifetime. */
interface ServerContext {
  config: ServerConfig;
  method: MethodInfo;
  masterKey: Uint8Array;
  replayFilter: ReplayFilter;
  logger: Logger;
}

/** Starts a Shadowsocks server listening on `config.address:config.port` (TCP). */
export function startServer(
  config: ServerConfig,
  options: ServiceOptions = {},
): Promise<RunningService> {
  const method = findMethod(config.method);
  if (!method) throw new RangeError(`Invalid method "${config.method}"`);
  const logger = options.logger ?? silentLogger;
  const context: ServerContext = {
    config,
    method,
    masterKey: evpBytesToKey(config.password, method.keySize),
    replayFilter: new ReplayFilter(),
    logger,
  };
  const listener = Deno.listen({ hostname: config.address, port: config.port });
  const service = serveConnections(
    listener,
    (conn, signal) => serveSession(conn, context, signal),
    { ...options, logger, name: "server" },
  );
  logger.info(
    `server listening on ${formatHostPort(service.addr)} (${method.name}, tcp)`,
  );
  return Promise.resolve(service);
}

async function serveSession(
  conn: Deno.TcpConn,
  context: ServerContext,
  signal: AbortSignal,
): Promise<SessionStatus> {
  const { config, logger } = context;
  const peer = formatHostPort(conn.remoteAddr);
  const started = Date.now();
  const deadline = new Deadline(config.handshakeTimeout * 1000, () => closeQuietly(conn));
  const stream = new ShadowsocksStream(conn, context.method, context.masterKey, {
    onPeerSalt: (salt) => {
      if (context.replayFilter.checkAndAdd(salt)) {
        throw new ProtocolError("ERR_REPLAY", "Salt seen before: replayed connection");
      }
    },
    onOwnSalt: (salt) => context.replayFilter.addOwn(salt),
  });

  const finish = (status: SessionStatus, detail: string) => {
    const line = `server ${peer} ${status} ${detail} (${Date.now() - started} ms)`;
    if (status === "OK" || status === "ERR_TIMEOUT" || status.startsWith("ERR_RELAY")) {
      logger.debug(line);
    } else {
      logger.info(line);
    }
    return status;
  };

  let address: Address;
  let initialPayload: Uint8Array;
  try {
    ({ address, initialPayload } = await readTargetAddress(stream));
  } catch (error) {
    if (deadline.expired) return finish("ERR_TIMEOUT", "handshake deadline passed");
    if (!(error instanceof ProtocolError)) {
      deadline.clear();
      return finish("ERR_RELAY_CLIENT", `handshake read failed: ${errorMessage(error)}`);
    }
    await drainUntilClosed(conn);
    deadline.clear();
    return finish(error.code, error.message);
  }

  let target: Deno.TcpConn;
  try {
    target = await connectDirect(address, {
      allowPrivateTargets: config.allowPrivateTargets,
      ipv6First: config.ipv6First,
      noDelay: config.noDelay,
      signal: AbortSignal.any([signal, AbortSignal.timeout(deadline.remainingMs)]),
    });
  } catch (error) {
    deadline.clear();
    const status = error instanceof ProtocolError ? error.code : "ERR_CONNECT";
    return finish(status, errorMessage(error));
  }
  deadline.clear();
  conn.setNoDelay(config.noDelay);

  try {
    if (initialPayload.length > 0) await writeAll(target, initialPayload);
  } catch (error) {
    closeQuietly(target);
    return finish("ERR_RELAY_TARGET", errorMessage(error));
  }
  const status = await relay(stream, target, {
    idleTimeoutMs: config.timeout * 1000,
    signal,
  });
  return finish(status, formatAddress(address));
}

/** Reads decrypted chunks until the address header is complete. */
async function readTargetAddress(
  stream: ShadowsocksStream,
): Promise<{ address: Address; initialPayload: Uint8Array }> {
  let buffered: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = await stream.readChunk();
    if (chunk === null) {
      throw new ProtocolError("ERR_READ_ADDRESS", "Stream ended before the target address");
    }
    buffered = buffered.length === 0 ? chunk : concatBytes(buffered, chunk);
    const decoded = decodeAddress(buffered);
    if (decoded) {
      return { address: decoded.address, initialPayload: buffered.subarray(decoded.length) };
    }
    if (buffered.length >= MAX_ADDRESS_LENGTH) {
      throw new ProtocolError("ERR_READ_ADDRESS", "Address header too long");
    }
  }
}

/** Reads and discards until the client closes or the connection is closed under us. */
async function drainUntilClosed(conn: Deno.TcpConn): Promise<void> {
  const sink = new Uint8Array(DRAIN_BUFFER_SIZE);
  try {
    while ((await conn.read(sink)) !== null) {
      // discard
    }
  } catch (error) {
    // The deadline closing the connection ends the drain; that is the expected way out.
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
        error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
}

function formatHostPort(addr: Deno.Addr): string {
  const net = addr as Deno.NetAddr;
  return net.hostname.includes(":")
    ? `[${net.hostname}]:${net.port}`
    : `${net.hostname}:${net.port}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
