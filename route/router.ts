/**
 * The router: which outbound a session's target goes through, or none (blocked). Without an
 * ACL every target takes the default outbound (the server on a local, direct on a server).
 * With one, the local sends bypassed targets direct and the rest through the server, and both
 * roles refuse targets on the ACL's outbound block list.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import type { Outbound } from "../outbound/outbound.ts";

/** Where a target goes. */
export type Route = Outbound | "block";

export interface Router {
  route(target: Address, user?: string): Promise<Route>;
}

/** Every target through one outbound. */
export function fixedRouter(outbound: Outbound): Router {
  return { route: () => Promise.resolve(outbound) };
}
