/**
 * The ss-manager compatible control port (`--manager-address host:port`, `manager_address`):
 * a UDP socket that takes libev's and shadowsocks-rust's commands (protocol/manager.ts) and
 * answers the sender. `add` starts a listener (replacing one on the same port), `remove` closes
 * it, `ping` answers `stat: {"port": bytes, …}`, `list` the listeners. Every `STAT_INTERVAL_MS`
 * the same `stat:` line goes, unasked, to the address that last sent a command, as the Python
 * manager does, so a controller can count traffic without polling.
 *
 * Bad input (invalid JSON, unknown keys, wrong types, a port in use, an oversized datagram)
 * gets an error reply and changes nothing; receive errors follow the loop rule of
 * relay/loop_errors.ts. Commands run one at a time, in arrival order.
 * @module
 */
import type { ServerConfig } from "../config/types.ts";
import { errorMessage } from "../protocol/errors.ts";
import {
  type AddRequest,
  encodeList,
  encodeStat,
  ManagerError,
  parseManagerCommand,
} from "../protocol/manager.ts";
import type { Logger } from "../relay/log.ts";
import { LoopGuard } from "../relay/loop_errors.ts";
import { UdpSocket } from "../relay/udp_socket.ts";
import type { ServerSupervisor } from "./supervisor.ts";

/** How often the traffic line goes to the last controller. */
export const STAT_INTERVAL_MS = 10_000;
/** Receive buffer: a datagram longer than this arrives cut and fails to parse (answered `err`). */
const BUFFER_SIZE = 8192;

export interface ManagerOptions {
  readonly hostname: string;
  readonly port: number;
  readonly supervisor: ServerSupervisor;
  /** Turns an `add` into a listener config; throws `ConfigError` with the reason. */
  readonly buildConfig: (request: AddRequest) => ServerConfig;
  readonly logger: Logger;
  readonly statIntervalMs?: number;
  /**
   * Where `add` and `remove` go instead of straight to the supervisor (fleet mode,
   * service/fleet_node.ts: the listener then runs on every node).
   */
  readonly listenerStore?: {
    addListener(request: AddRequest, config: ServerConfig): Promise<void>;
    removeListener(port: number): Promise<boolean>;
  };
}

export interface RunningManager {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

export function startManager(options: ManagerOptions): RunningManager {
  const { supervisor, logger, listenerStore: store } = options;
  const socket = UdpSocket.bind(options.hostname, options.port);
  let lastController: Deno.NetAddr | undefined;

  const stat = () => {
    const bytes = new Map<number, number>();
    for (const { service } of supervisor.listeners) {
      const { stats, udpStats } = service;
      const total = stats.bytesUplink + stats.bytesDownlink +
        (udpStats ? udpStats.bytesUplink + udpStats.bytesDownlink : 0);
      bytes.set(service.addr.port, (bytes.get(service.addr.port) ?? 0) + total);
    }
    return encodeStat(bytes);
  };

  const handle = async (text: string): Promise<string> => {
    let command;
    try {
      command = parseManagerCommand(text);
    } catch (error) {
      if (error instanceof ManagerError) return error.message;
      throw error;
    }
    switch (command.command) {
      case "ping":
        return stat();
      case "list":
        return encodeList(supervisor.listeners.map(({ config }) => ({
          port: config.port,
          password: config.password,
          method: config.method,
          ...(config.users
            ? { users: config.users.map(({ name, password }) => ({ name, password })) }
            : {}),
        })));
      case "remove":
        try {
          if (store) await store.removeListener(command.port);
          else await supervisor.remove(command.port);
        } catch (error) {
          logger.warn(`manager: cannot remove port ${command.port}: ${errorMessage(error)}`);
          return `err: ${errorMessage(error)}`;
        }
        return "ok";
      case "add": {
        let config: ServerConfig;
        try {
          config = options.buildConfig(command.request);
        } catch (error) {
          return `err: ${errorMessage(error)}`;
        }
        try {
          if (store) await store.addListener(command.request, config);
          else await supervisor.add(config);
        } catch (error) {
          logger.warn(`manager: cannot add port ${config.port}: ${errorMessage(error)}`);
          if (error instanceof Error && error.name === "FleetUnavailableError") {
            return `err: the fleet is unreachable: ${errorMessage(error)}`;
          }
          return "port is not available";
        }
        return "ok";
      }
    }
  };

  const reply = async (text: string, to: Deno.NetAddr) => {
    try {
      await socket.send(new TextEncoder().encode(text), to);
    } catch (error) {
      logger.debug(`manager: reply to ${to.hostname}:${to.port} failed: ${errorMessage(error)}`);
    }
  };

  const loop = (async () => {
    const buffer = new Uint8Array(BUFFER_SIZE);
    const guard = new LoopGuard({ name: "manager receive", logger, signal: socket.closing });
    const decoder = new TextDecoder();
    for (;;) {
      const datagram = await socket.receiveNext(buffer, guard);
      if (!datagram) return;
      lastController = datagram.from;
      const text = decoder.decode(datagram.data);
      let answer: string;
      try {
        answer = await handle(text);
      } catch (error) {
        logger.error(`manager: command failed: ${errorMessage(error)}`);
        answer = "err";
      }
      await reply(answer, datagram.from);
    }
  })();

  const timer = setInterval(() => {
    if (lastController) reply(stat(), lastController);
  }, options.statIntervalMs ?? STAT_INTERVAL_MS);
  logger.info(`manager listening on ${socket.addr.hostname}:${socket.addr.port} (ss-manager API)`);

  return {
    addr: socket.addr,
    close: async () => {
      clearInterval(timer);
      socket.close();
      await loop;
    },
  };
}
