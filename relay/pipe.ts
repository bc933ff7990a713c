/**
 * Copies bytes both ways between the client side and the target side of a session until both
 * directions have ended:
 *
 * ```
 *   uplink:   client ──read──▶ buffer ──write──▶ target     (client EOF → target.closeWrite())
 *   downlink: target ──read──▶ buffer ──write──▶ client     (target EOF → client.closeWrite())
 * ```
 *
 * An error in either direction closes both sides. Silence in both directions for the idle
 * timeout closes both sides too.
 * @module
 */
import { ProtocolError, type SessionStatus } from "../protocol/errors.ts";
import { closeQuietly, type Duplex, writeAll } from "./io.ts";

/**
 * Size of the buffer a busy direction reads into; one full AEAD-2017 chunk of payload. A
 * direction starts with a small buffer and switches to this one when a read fills the small
 * one, and back after a short read, so an idle session holds 2 × 2 KiB instead of 2 × 16 KiB
 * (bench/throughput.ts: server RSS per idle connection 97 → 45 KiB, throughput unchanged).
 */
export const RELAY_BUFFER_SIZE = 0x3fff;
/** The buffer of a direction whose reads come back short (idle or interactive sessions). */
const SMALL_RELAY_BUFFER_SIZE = 2048;

export interface RelayOptions {
  /** Close the session after this long without a byte in either direction. */
  idleTimeoutMs: number;
  /** Counts bytes as they pass, for stats. */
  onBytes?: (direction: "uplink" | "downlink", count: number) => void;
  /** Aborting closes both sides (service shutdown). */
  signal?: AbortSignal;
}

/** Thrown inside a direction to say which side failed. */
class SideError extends Error {
  constructor(readonly status: SessionStatus, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/**
 * Relays until both directions end. Resolves to the session status: `OK`, `ERR_TIMEOUT`, or
 * the status of the side that failed first. Closes both streams before resolving.
 */
export async function relay(
  client: Duplex,
  target: Duplex,
  options: RelayOptions,
): Promise<SessionStatus> {
  let lastActivity = Date.now();
  let ended: SessionStatus | undefined;
  const closeBoth = (status: SessionStatus) => {
    ended ??= status;
    closeQuietly(client);
    closeQuietly(target);
  };

  let timer: ReturnType<typeof setTimeout> | undefined;
  const armIdleTimer = (delay: number) => {
    timer = setTimeout(() => {
      const idle = Date.now() - lastActivity;
      if (idle >= options.idleTimeoutMs) closeBoth("ERR_TIMEOUT");
      else armIdleTimer(options.idleTimeoutMs - idle);
    }, delay);
  };
  armIdleTimer(options.idleTimeoutMs);
  const onAbort = () => closeBoth("OK");
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const copy = async (
    from: Duplex,
    to: Duplex,
    direction: "uplink" | "downlink",
    readStatus: SessionStatus,
    writeStatus: SessionStatus,
  ) => {
    const small = new Uint8Array(SMALL_RELAY_BUFFER_SIZE);
    let buffer = small;
    for (;;) {
      let n: number | null;
      try {
        n = await from.read(buffer);
      } catch (error) {
        throw new SideError(error instanceof ProtocolError ? error.code : readStatus, error);
      }
      if (n === null) break;
      lastActivity = Date.now();
      try {
        await writeAll(to, buffer.subarray(0, n));
      } catch (error) {
        throw new SideError(writeStatus, error);
      }
      options.onBytes?.(direction, n);
      if (n === buffer.length) {
        if (buffer.length < RELAY_BUFFER_SIZE) buffer = new Uint8Array(RELAY_BUFFER_SIZE);
      } else if (n < SMALL_RELAY_BUFFER_SIZE) {
        buffer = small;
      }
    }
    try {
      await to.closeWrite();
    } catch (error) {
      // The peer may already be gone (NotConnected); the other direction reports it.
      if (
        !(error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.BadResource)
      ) {
        throw new SideError(writeStatus, error);
      }
    }
  };

  const run = (promise: Promise<void>) =>
    promise.catch((error: unknown) => {
      closeBoth(error instanceof SideError ? error.status : "ERR_RELAY_CLIENT");
    });

  await Promise.all([
    run(copy(client, target, "uplink", "ERR_RELAY_CLIENT", "ERR_RELAY_TARGET")),
    run(copy(target, client, "downlink", "ERR_RELAY_TARGET", "ERR_RELAY_CLIENT")),
  ]);
  clearTimeout(timer);
  options.signal?.removeEventListener("abort", onAbort);
  closeBoth("OK");
  return ended!;
}
