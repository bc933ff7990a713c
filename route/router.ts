/**
 * The router: which outbound a session's target goes through, or none (blocked). Without an
 * ACL every target takes the default outbound (the server on a local, direct on a server).
 * With one, the local sends bypassed targets direct and the rest through the server, and both
 * roles refuse targets on the ACL's outbound block list.
 * @module
 */
import type { Address } from "../protocol/address.ts";
import type { Outbound } from "../outbound/outbound.ts";
import type { AccessControl } from "./acl.ts";

/** Where a target goes. */
export type Route = Outbound | "block";

export interface Router {
  route(target: Address, user?: string): Promise<Route>;
}

/** Every target through one outbound. */
export function fixedRouter(outbound: Outbound): Router {
  return { route: () => Promise.resolve(outbound) };
}

/** Resolves a name to IP literals for ACL rules on addresses (injected: route/ does no I/O). */
export type Resolve = (name: string) => Promise<readonly string[]>;

/** What an ACL decides for one target on a local: through the server, direct, or refused. */
export type AclDecision = "proxy" | "bypass" | "block";

/** The local-side ACL decision (NOTES-2 §16.3): the outbound block list first, then bypass. */
export async function aclDecision(
  acl: AccessControl,
  target: Address,
  resolve: Resolve,
): Promise<AclDecision> {
  if (acl.checksOutbound && (await acl.checkOutbound(target, resolve)) === "block") {
    return "block";
  }
  return await acl.checkTarget(target, resolve);
}

/**
 * Routing by an ACL (NOTES-2 §16): targets on the outbound block list are refused, bypassed
 * targets go `direct`, the rest through `proxy`.
 */
export function aclRouter(
  acl: AccessControl,
  outbounds: { proxy: Outbound; direct: Outbound },
  resolve: Resolve,
): Router {
  return {
    async route(target) {
      const decision = await aclDecision(acl, target, resolve);
      return decision === "block"
        ? "block"
        : decision === "bypass"
        ? outbounds.direct
        : outbounds.proxy;
    },
  };
}
