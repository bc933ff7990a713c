/**
 * The direct outbound: resolve a target, apply the target policy to every resolved address,
 * and connect. Names are resolved here (not inside `Deno.connect`) so that the policy sees the
 * address actually dialled.
 * @module
 */
import { type Address, formatAddress } from "../protocol/address.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { isForbiddenIp } from "../protocol/target_policy.ts";
import { Resolver } from "./resolver.ts";
import { applyNoDelay } from "./io.ts";

/**
 * The resolver every target name goes through, TCP and UDP alike: the system's (getaddrinfo)
 * behind a bounded cache, or the name servers of `nameserver` once `useResolver` installs them.
 */
let resolver = new Resolver();

/** Makes `next` the resolver of every later lookup (at start, from `nameserver`). */
export function useResolver(next: Resolver): void {
  resolver = next;
}

/** The resolver in use (its counters feed the metrics). */
export function currentResolver(): Resolver {
  return resolver;
}

export interface DirectOptions {
  /** Skip the target policy (tests, private deployments). Default false. */
  allowPrivateTargets?: boolean;
  /** Dial IPv6 addresses of a name before IPv4 ones. Default false. */
  ipv6First?: boolean;
  /** Set TCP_NODELAY on the new connection. Default true. */
  noDelay?: boolean;
  signal?: AbortSignal;
}

/**
 * Resolves `address` to IP literals, in dialling order. A name that does not resolve throws
 * `ResolveError` (status `ERR_RESOLVE`).
 */
export async function resolveTarget(address: Address, ipv6First = false): Promise<string[]> {
  if (address.type !== "domain") return [address.host];
  return await resolver.resolve(address.host, { ipv6First });
}

/**
 * Resolves `address` and keeps the IPs the target policy allows, in dialling order. Throws
 * `ProtocolError` with `ERR_RESOLVE` when resolution fails, or `ERR_TARGET_FORBIDDEN` when the
 * policy refuses every resolved address. TCP and UDP relays share this check.
 */
export async function resolveAllowedTarget(
  address: Address,
  options: Pick<DirectOptions, "allowPrivateTargets" | "ipv6First"> = {},
): Promise<string[]> {
  const resolved = await resolveTarget(address, options.ipv6First ?? false);
  return allowedTargets(address, resolved, options.allowPrivateTargets ?? false);
}

/** The IPs of `resolved` the policy allows; throws `ERR_TARGET_FORBIDDEN` when none is. */
export function allowedTargets(
  address: Address,
  resolved: readonly string[],
  allowPrivateTargets: boolean,
): string[] {
  const allowed = allowPrivateTargets ? [...resolved] : resolved.filter((ip) => !isForbiddenIp(ip));
  if (allowed.length === 0) {
    throw new ProtocolError(
      "ERR_TARGET_FORBIDDEN",
      `Target ${formatAddress(address)} is not a public address`,
    );
  }
  return allowed;
}

/**
 * Connects to `address`. Throws `ProtocolError` with `ERR_TARGET_FORBIDDEN` when the policy
 * refuses every resolved address, or `ERR_CONNECT` when no address accepts.
 */
export async function connectDirect(
  address: Address,
  options: DirectOptions = {},
): Promise<Deno.TcpConn> {
  // An IP literal needs no lookup: checked at once, without an await (most servers' targets
  // are names, but every tunnel's and many clients' are not).
  const allowed = address.type === "domain"
    ? await resolveAllowedTarget(address, options)
    : allowedTargets(address, [address.host], options.allowPrivateTargets ?? false);
  let lastError: unknown;
  for (const hostname of allowed) {
    try {
      const connectOptions: Deno.ConnectOptions = { hostname, port: address.port };
      if (options.signal) connectOptions.signal = options.signal;
      const conn = await Deno.connect(connectOptions);
      applyNoDelay(conn, options.noDelay ?? true);
      return conn;
    } catch (error) {
      lastError = error;
      if (options.signal?.aborted) break;
    }
  }
  throw new ProtocolError(
    "ERR_CONNECT",
    `Cannot connect to ${formatAddress(address)}: ${(lastError as Error)?.message ?? "no address"}`,
    { cause: lastError },
  );
}
