/**
 * The outbound seam: where a session's target connection comes from. Direct (the process dials
 * the target), one Shadowsocks server, or a balancer over several. The session line calls
 * `connect` before it answers the application, so a failure can still be reported (or, for the
 * balancer, retried on another server) while the application waits.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import type { Duplex } from "../relay/io.ts";

/** A connection an outbound made for one session. */
export interface OutboundConnection {
  /** The byte stream to the target (plaintext on our side). */
  readonly stream: Duplex;
  /** Our end of the TCP connection it runs on: what a SOCKS reply reports as bound. */
  readonly bound: Deno.NetAddr;
  /** Which server carried it, when the outbound chose among several. */
  readonly via?: string;
}

export interface Outbound {
  /** Names it in log lines: `direct`, or a server's `host:port`. */
  readonly name: string;
  /** Connects to `target`; throws with the cause when it cannot (see `connectErrorStatus`). */
  connect(target: Address, options: { signal: AbortSignal }): Promise<OutboundConnection>;
}
