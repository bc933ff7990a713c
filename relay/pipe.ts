/**
 * Copies bytes both ways between the client side and the target side of a session until both
 * directions have ended:
 *
 * ```
 *   uplink:   client ──read──▶ buffer ──write──▶ target     (client EOF → target.closeWrite())
 *   downlink: target ──read──▶ buffer ──write──▶ client     (target EOF → client.closeWrite())
 * ```
 *
 * A side that decrypts into its own buffer (`Duplex.readView`, a Shadowsocks stream) lends that
 * buffer instead: the direction then holds no buffer of its own and copies nothing.
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
 * one, and back after a short read, so an idle session holds 1 KiB instead of 16 KiB per
 * direction (bench/throughput.ts: server RSS per idle connection 97 → 45 KiB with 2 KiB, then
 * to 25 KiB together with 1 KiB, `readView` and V8's young generation capped; throughput
 * unchanged).
 */
export const RELAY_BUFFER_SIZE = 0x3fff;
/** The buffer of a direction whose reads come back short (idle or interactive sessions). */
const SMALL_RELAY_BUFFER_SIZE = 1024;
const EMPTY = new Uint8Array(0);

export interface RelayOptions {
  /** Close the session after this long without a byte in either direction. */
  idleTimeoutMs: number;
  /** Counts bytes as they pass, for stats. */
  onBytes?: (direction: "uplink" | "downlink", count: number) => void;
  /** Aborting closes both sides (service shutdown). */
  signal?: AbortSignal;
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
  // The service cuts what is left at the end of its shutdown grace period.
  const onAbort = () => closeBoth("ERR_SHUTDOWN");
  options.signal?.addEventListener("abort", onAbort, { once: true });

  /** One direction; a failure closes both sides with the failing side's status. */
  const copy = async (
    from: Duplex,
    to: Duplex,
    direction: "uplink" | "downlink",
    readStatus: SessionStatus,
    writeStatus: SessionStatus,
  ) => {
    // A stream with its own buffer (readView) lends it; otherwise read into ours.
    const small = from.readView ? EMPTY : new Uint8Array(SMALL_RELAY_BUFFER_SIZE);
    let buffer = small;
    let reading = true;
    try {
      for (;;) {
        reading = true;
        let bytes: Uint8Array | null;
        if (from.readView) {
          bytes = await from.readView();
        } else {
          const n = await from.read(buffer);
          bytes = n === null ? null : buffer.subarray(0, n);
        }
        if (bytes === null) break;
        lastActivity = Date.now();
        reading = false;
        await writeAll(to, bytes);
        options.onBytes?.(direction, bytes.length);
        if (buffer === small && bytes.length === small.length && small.length > 0) {
          buffer = new Uint8Array(RELAY_BUFFER_SIZE);
        } else if (buffer !== small && bytes.length < SMALL_RELAY_BUFFER_SIZE) {
          buffer = small;
        }
      }
      reading = false;
      try {
        await to.closeWrite();
      } catch (error) {
        // The peer may already be gone (NotConnected); the other direction reports it.
        if (
          !(error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.BadResource)
        ) {
          throw error;
        }
      }
    } catch (error) {
      if (!reading) closeBoth(writeStatus);
      else closeBoth(error instanceof ProtocolError ? error.code : readStatus);
    }
  };

  await Promise.all([
    copy(client, target, "uplink", "ERR_RELAY_CLIENT", "ERR_RELAY_TARGET"),
    copy(target, client, "downlink", "ERR_RELAY_TARGET", "ERR_RELAY_CLIENT"),
  ]);
  clearTimeout(timer);
  options.signal?.removeEventListener("abort", onAbort);
  closeBoth("OK");
  return ended!;
}
