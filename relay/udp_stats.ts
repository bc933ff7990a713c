/**
 * Counters of one UDP relay (server, local SOCKS5 UDP ASSOCIATE, or tunnel). Datagrams have no
 * session to end, so each client datagram gets the status a session would: `OK` when relayed,
 * otherwise the reason it was dropped. Read by tests and by the stats log.
 * @module
 */
import { createStatusCounts, type SessionStatus } from "../protocol/errors.ts";
import { createLoopErrorCounts, type LoopErrorCounts } from "./loop_errors.ts";

export interface UdpStats {
  /**
   * Client datagrams by outcome: `OK` sent toward the target; `ERR_CIPHER` too short, bad tag
   * or (2022) unknown user or wrong packet type; `ERR_REPLAY` (2022) packet ID replayed or too
   * old, or timestamp more than 30 s off; `ERR_READ_ADDRESS` bad address header or padding;
   * `ERR_TARGET_FORBIDDEN` refused by the target policy; `ERR_CONNECT` name not resolved or no
   * socket; `ERR_RELAY_TARGET` the send failed or the association's queue was full.
   */
  readonly statuses: Record<SessionStatus, number>;
  /** Datagrams dropped because they came from an address the association does not serve. */
  foreignDropped: number;
  /** SOCKS5 datagrams dropped because FRAG was not 0 (reassembly is not supported). */
  fragmentsDropped: number;
  /** Replies delivered to clients. */
  repliesRelayed: number;
  /** Replies dropped: they did not authenticate or parse, or the send to the client failed. */
  repliesDropped: number;
  /** Associations open now; never above the NAT table's capacity. */
  associations: number;
  /** Associations opened since start. */
  associationsOpened: number;
  /** Associations closed to make room for a new one (least recently used first). */
  associationsEvicted: number;
  /** Associations closed after `udp_timeout` without traffic. */
  associationsExpired: number;
  /** Datagram bytes sent on the target side, and received from it. */
  bytesUplink: number;
  bytesDownlink: number;
  /**
   * Per-user counters of a multi-user 2022 server (SIP023), by user name; empty otherwise.
   * Null-prototype, so any user name is a safe key.
   */
  readonly users: Record<string, UdpUserStats>;
  /** Receive errors skipped or waited out; they never end a receive loop. */
  readonly receiveErrors: LoopErrorCounts;
}

/** What one user of a multi-user server did over UDP. */
export interface UdpUserStats {
  /** Sessions the user opened (for 2022, one per client session ID); the same name as TCP's. */
  sessions: number;
  /** The user's datagrams sent toward targets (counted under `OK` too). */
  datagramsRelayed: number;
  /** Replies delivered to the user. */
  repliesRelayed: number;
  /** Datagram bytes sent to targets for the user, and received from them. */
  bytesUplink: number;
  bytesDownlink: number;
}

/** Zero counters, with a zero entry for each of `users` (names of a multi-user server). */
export function createUdpStats(users: readonly string[] = []): UdpStats {
  const perUser: Record<string, UdpUserStats> = Object.create(null);
  for (const name of users) perUser[name] = createUdpUserStats();
  return {
    statuses: createStatusCounts(),
    foreignDropped: 0,
    fragmentsDropped: 0,
    repliesRelayed: 0,
    repliesDropped: 0,
    associations: 0,
    associationsOpened: 0,
    associationsEvicted: 0,
    associationsExpired: 0,
    bytesUplink: 0,
    bytesDownlink: 0,
    users: perUser,
    receiveErrors: createLoopErrorCounts(),
  };
}

/** The counters of user `name`, created on first use. */
export function udpUserStats(stats: UdpStats, name: string): UdpUserStats {
  return stats.users[name] ??= createUdpUserStats();
}

function createUdpUserStats(): UdpUserStats {
  return {
    sessions: 0,
    datagramsRelayed: 0,
    repliesRelayed: 0,
    bytesUplink: 0,
    bytesDownlink: 0,
  };
}
