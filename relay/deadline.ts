/**
 * A one-shot timer for handshakes. Deno's `read` takes no deadline, so expiry closes the
 * connection, which makes the pending read fail; `expired` then tells why it failed.
 * @module
 */
export class Deadline {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired = false;
  readonly #endsAt: number;

  constructor(ms: number, onExpire: () => void) {
    this.#endsAt = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#expired = true;
      this.#timer = undefined;
      onExpire();
    }, ms);
  }

  get expired(): boolean {
    return this.#expired;
  }

  /** Milliseconds left, at least 1 (for `AbortSignal.timeout`). */
  get remainingMs(): number {
    return Math.max(1, this.#endsAt - Date.now());
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  [Symbol.dispose](): void {
    this.clear();
  }
}
