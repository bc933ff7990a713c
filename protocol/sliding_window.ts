/**
 * Packet-ID replay filter for 2022 UDP sessions, the sliding window WireGuard uses for its
 * counters (RFC 6479 style): IDs ahead of the highest one seen are accepted and move the window,
 * IDs more than `WINDOW_SIZE` behind the highest are rejected, and IDs inside the window are
 * accepted once.
 *
 * ```
 * ring: 256 words × 32 bits = 8192 bits, indexed by (id + 1) mod 8192
 *
 *       highest − 8128            highest
 *  ...──────┬───────────────────────┬─────────────▶ packet id
 *   too old │ window: bit per id    │ ahead: accepted, window slides, skipped words are zeroed
 * ```
 *
 * Size: `WINDOW_SIZE` = 8128 = (128 − 1) × 64, the value shadowsocks-rust uses (so its published
 * test sequence applies unchanged). ss-go's 256 drops anything reordered by more than 256
 * packets, which a burst of full-size datagrams through a busy path can exceed; 8128 costs
 * 1 KiB per session and tolerates several megabytes of reordering. The ring (8192 bits) must be
 * at least one word larger than the window so that sliding never zeroes a word that still holds
 * a live bit.
 *
 * IDs at or above `REJECT_AFTER_PACKET_ID` (2^64 − 1 − 2^13) are refused, as in ss-rust, so the
 * counter can never wrap. A sender must start a new session before reaching it.
 * @module
 */

/** How far behind the highest accepted ID an ID may be and still be accepted once. */
export const WINDOW_SIZE = 8128;
/** First packet ID that is always refused. */
export const REJECT_AFTER_PACKET_ID: bigint = (1n << 64n) - 1n - (1n << 13n);

const WORD_BITS = 32n;
const RING_WORDS = 256;
const RING_WORDS_BIG = BigInt(RING_WORDS);

/** One session's packet-ID filter. */
export class SlidingWindow {
  readonly #ring = new Uint32Array(RING_WORDS);
  /**
   * Position of the highest accepted ID, where position = ID + 1. Position 0 is never used, so
   * a fresh window (0) accepts ID 0 and everything else.
   */
  #top = 0n;

  /** True when `packetId` would be accepted now. Changes nothing: use before authentication. */
  check(packetId: bigint): boolean {
    if (packetId < 0n || packetId >= REJECT_AFTER_PACKET_ID) return false;
    const position = packetId + 1n;
    if (position + BigInt(WINDOW_SIZE) < this.#top) return false;
    if (position > this.#top) return true;
    const [word, mask] = slot(position);
    return (this.#ring[word]! & mask) === 0;
  }

  /** Accepts `packetId` once: true the first time, false for a replay or an ID too old. */
  accept(packetId: bigint): boolean {
    if (packetId < 0n || packetId >= REJECT_AFTER_PACKET_ID) return false;
    const position = packetId + 1n;
    if (position + BigInt(WINDOW_SIZE) < this.#top) return false;
    if (position > this.#top) {
      const from = this.#top / WORD_BITS;
      const to = position / WORD_BITS;
      const skipped = to - from < RING_WORDS_BIG ? Number(to - from) : RING_WORDS;
      let word = Number(from % RING_WORDS_BIG);
      for (let i = 0; i < skipped; i++) {
        word = (word + 1) % RING_WORDS;
        this.#ring[word] = 0;
      }
      this.#top = position;
    }
    const [word, mask] = slot(position);
    if ((this.#ring[word]! & mask) !== 0) return false;
    this.#ring[word] = this.#ring[word]! | mask;
    return true;
  }
}

function slot(position: bigint): [number, number] {
  const word = Number((position / WORD_BITS) % RING_WORDS_BIG);
  const bit = Number(position % WORD_BITS);
  return [word, (1 << bit) >>> 0];
}
