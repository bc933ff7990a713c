/**
 * The direct outbound: this process dials the target itself (the server for every session, the
 * local for targets an ACL bypasses). Resolution and the target policy live in
 * relay/direct.ts; here they are wrapped in the outbound seam.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import { connectDirect } from "../relay/direct.ts";
import type { Outbound, OutboundConnection } from "./outbound.ts";

export interface DirectOutboundOptions {
  /** Allow loopback/private/link-local targets (a local bypassing to its LAN). */
  allowPrivateTargets: boolean;
  ipv6First: boolean;
  noDelay: boolean;
}

export class DirectOutbound implements Outbound {
  readonly name = "direct";
  readonly #options: DirectOutboundOptions;

  constructor(options: DirectOutboundOptions) {
    this.#options = options;
  }

  async connect(target: Address, options: { signal: AbortSignal }): Promise<OutboundConnection> {
    const conn = await connectDirect(target, { ...this.#options, signal: options.signal });
    return { stream: conn, bound: conn.localAddr };
  }
}
