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
import { offAbort, onAbort } from "./on_abort.ts";
import { type QueuedTimer, restartTimer, startTimer, stopTimer } from "./timer_queue.ts";

/**
 * Size of the buffer a busy direction reads into; one full AEAD-2017 chunk of payload. A
 * direction starts with a small buffer and switches to this one when a read fills the small
 * one, and back after a short read, so an idle session holds 256 bytes instead of 16 KiB per
 * direction (bench/throughput.ts: server RSS per idle connection 97 → 45 KiB with 2 KiB, then
 * to 25 KiB together with 1 KiB, `readView` and V8's young generation capped; throughput
 * unchanged). 1 KiB → 256 bytes (here and in relay/shadowsocks_stream.ts) saved 1.2–1.7 KiB
 * per idle connection on each side; a burst longer than 256 bytes after a pause costs one more
 * read, as one over 1 KiB did before.
 */
export const RELAY_BUFFER_SIZE = 0x3fff;
/** The buffer of a direction whose reads come back short (idle or interactive sessions). */
export const SMALL_RELAY_BUFFER_SIZE = 256;
const EMPTY = new Uint8Array(0);
const ignore = () => {};

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
export function relay(
  client: Duplex,
  target: Duplex,
  options: RelayOptions,
): Promise<SessionStatus> {
  return new Relay(client, target, options).run();
}

/**
 * One relay's state. A class and not closures over `relay`'s locals: every idle session holds
 * one, and fields cost less than a context and a closure per callback (bench/throughput.ts,
 * idle memory).
 */
class Relay {
  readonly #client: Duplex;
  readonly #target: Duplex;
  readonly #options: RelayOptions;
  #ended: SessionStatus | undefined;
  /** Restarted by every read; queued (relay/timer_queue.ts): most sessions hold only this one. */
  readonly #idle: QueuedTimer;
  /** The service cuts what is left at the end of its shutdown grace period. */
  readonly #onShutdown = () => this.#closeBoth("ERR_SHUTDOWN");
  /** Directions still running. */
  #copying = 2;
  #resolve: (status: SessionStatus) => void = ignore;
  #reject: (error: unknown) => void = ignore;

  constructor(client: Duplex, target: Duplex, options: RelayOptions) {
    this.#client = client;
    this.#target = target;
    this.#options = options;
    this.#idle = startTimer(() => this.#closeBoth("ERR_TIMEOUT"), options.idleTimeoutMs);
    if (options.signal) onAbort(options.signal, this.#onShutdown);
  }

  /**
   * Starts both directions; the promise resolves when the second one has ended. Each copy
   * reports its own end (`#copyEnded`): no `Promise.all` and no frame waiting on it, which an
   * idle session would hold.
   */
  run(): Promise<SessionStatus> {
    const { promise, resolve, reject } = Promise.withResolvers<SessionStatus>();
    this.#resolve = resolve;
    this.#reject = reject;
    const client = this.#client;
    const target = this.#target;
    this.#copy(client, target, "uplink", "ERR_RELAY_CLIENT", "ERR_RELAY_TARGET");
    this.#copy(target, client, "downlink", "ERR_RELAY_TARGET", "ERR_RELAY_CLIENT");
    return promise;
  }

  /** One direction has ended; after the second, the relay ends. */
  #copyEnded(): void {
    if (--this.#copying > 0) return;
    try {
      stopTimer(this.#idle);
      if (this.#options.signal) offAbort(this.#options.signal, this.#onShutdown);
      this.#closeBoth("OK");
      this.#resolve(this.#ended!);
    } catch (error) {
      this.#reject(error);
    }
  }

  #closeBoth(status: SessionStatus): void {
    this.#ended ??= status;
    closeQuietly(this.#client);
    closeQuietly(this.#target);
  }

  /** One direction; a failure closes both sides with the failing side's status. */
  async #copy(
    from: Duplex,
    to: Duplex,
    direction: "uplink" | "downlink",
    readStatus: SessionStatus,
    writeStatus: SessionStatus,
  ): Promise<void> {
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
        restartTimer(this.#idle);
        reading = false;
        // Most writes take everything: only a partial one needs writeAll's loop.
        const written = await to.write(bytes);
        if (written < bytes.length) await writeAll(to, bytes.subarray(written));
        this.#options.onBytes?.(direction, bytes.length);
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
      try {
        if (!reading) this.#closeBoth(writeStatus);
        else this.#closeBoth(error instanceof ProtocolError ? error.code : readStatus);
      } catch (unexpected) {
        this.#reject(unexpected);
      }
    }
    this.#copyEnded();
  }
}
