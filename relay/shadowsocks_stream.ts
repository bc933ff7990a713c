/**
 * A Shadowsocks TCP connection seen as a plain byte stream. Each direction starts with that
 * side's random salt, then AEAD chunks (see protocol/aead_chunk.ts). The relay reads and writes
 * plaintext through this class and never sees a salt, nonce or tag.
 *
 * Reading: `salt` (first read only) → chunks → plaintext.
 * Writing: first write sends our salt in front of the first chunks, in one write call.
 * @module
 */
import { AeadCipher } from "../crypto/aead_cipher.ts";
import { deriveSessionSubkey } from "../crypto/kdf.ts";
import type { MethodInfo } from "../crypto/methods.ts";
import { ChunkDecoder, MAX_AEAD_PAYLOAD, sealChunks } from "../protocol/aead_chunk.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { closeQuietly, concatBytes, type Duplex, writeAll } from "./io.ts";

/** Bytes of ciphertext buffered per read: a little over two full chunks. */
const READ_BUFFER_SIZE = 2 * (MAX_AEAD_PAYLOAD + 2 + 2 * 16) + 64;

export interface ShadowsocksStreamOptions {
  /** Called with the peer's salt once its first chunk has authenticated (replay check). */
  onPeerSalt?: (salt: Uint8Array) => void;
  /** Called with our salt when it is generated (so the server can remember its own salts). */
  onOwnSalt?: (salt: Uint8Array) => void;
}

/** A plaintext `Duplex` over an encrypted connection. */
export class ShadowsocksStream implements Duplex {
  readonly #conn: Duplex;
  readonly #method: MethodInfo;
  readonly #masterKey: Uint8Array;
  readonly #options: ShadowsocksStreamOptions;

  #encoder: AeadCipher | undefined;
  #decoder: ChunkDecoder | undefined;
  #peerSaltReported = false;
  #peerSalt: Uint8Array | undefined;

  readonly #inbox = new Uint8Array(READ_BUFFER_SIZE);
  #inStart = 0;
  #inEnd = 0;
  #plain: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(
    conn: Duplex,
    method: MethodInfo,
    masterKey: Uint8Array,
    options: ShadowsocksStreamOptions = {},
  ) {
    this.#conn = conn;
    this.#method = method;
    this.#masterKey = masterKey;
    this.#options = options;
  }

  /**
   * Returns the next decrypted chunk payload, or null at a clean end of stream (between
   * chunks). Throws `ProtocolError` for a bad tag, an oversized length, or an end of stream in
   * the middle of a chunk.
   */
  async readChunk(): Promise<Uint8Array | null> {
    if (this.#method.family === "none") return this.#readPlain();
    if (!this.#decoder) {
      const salt = await this.#readSalt();
      if (!salt) return null;
      const subkey = deriveSessionSubkey(this.#masterKey, salt);
      this.#decoder = new ChunkDecoder(new AeadCipher(this.#method.algorithm!, subkey));
    }
    for (;;) {
      const step = this.#decoder.next(this.#inbox.subarray(this.#inStart, this.#inEnd));
      this.#inStart += step.consumed;
      if (step.consumed > 0 && !this.#peerSaltReported) {
        // The length block authenticated: only now is the salt worth a replay check.
        this.#peerSaltReported = true;
        this.#options.onPeerSalt?.(this.#peerSalt!);
      }
      if (step.payload) return step.payload;
      if (!(await this.#fill(this.#decoder.wanted))) {
        if (this.#decoder.atChunkBoundary && this.#inStart === this.#inEnd) {
          if (this.#peerSaltReported) return null;
          // A salt and nothing after it: nothing ever authenticated.
          throw new ProtocolError("ERR_CIPHER", "Stream ended before the first chunk");
        }
        throw new ProtocolError("ERR_CIPHER", "Stream ended in the middle of a chunk");
      }
    }
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#plain.length === 0) {
      const chunk = await this.readChunk();
      if (chunk === null) return null;
      this.#plain = chunk;
    }
    const n = Math.min(p.length, this.#plain.length);
    p.set(this.#plain.subarray(0, n));
    this.#plain = this.#plain.subarray(n);
    return n;
  }

  /** Encrypts and writes all of `p` (our salt goes in front of the first write). */
  async write(p: Uint8Array): Promise<number> {
    if (p.length === 0) return 0;
    if (this.#method.family === "none") {
      await writeAll(this.#conn, p);
      return p.length;
    }
    if (!this.#encoder) {
      const salt = crypto.getRandomValues(new Uint8Array(this.#method.saltSize));
      this.#options.onOwnSalt?.(salt);
      this.#encoder = new AeadCipher(
        this.#method.algorithm!,
        deriveSessionSubkey(this.#masterKey, salt),
      );
      await writeAll(this.#conn, concatBytes(salt, sealChunks(this.#encoder, p, MAX_AEAD_PAYLOAD)));
      return p.length;
    }
    await writeAll(this.#conn, sealChunks(this.#encoder, p, MAX_AEAD_PAYLOAD));
    return p.length;
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    closeQuietly(this.#conn);
  }

  /** Reads the peer's salt through the buffer, so salt and first chunk arrive in one read. */
  async #readSalt(): Promise<Uint8Array | null> {
    const size = this.#method.saltSize;
    if (!(await this.#fill(size))) {
      if (this.#inEnd === this.#inStart) return null;
      throw new ProtocolError(
        "ERR_CIPHER",
        `Stream ended inside the salt: expected ${size} bytes, got ${this.#inEnd - this.#inStart}`,
      );
    }
    const salt = this.#inbox.slice(this.#inStart, this.#inStart + size);
    this.#inStart += size;
    this.#peerSalt = salt;
    return salt;
  }

  async #readPlain(): Promise<Uint8Array | null> {
    const n = await this.#conn.read(this.#inbox);
    return n === null ? null : this.#inbox.slice(0, n);
  }

  /** Reads until `wanted` unconsumed bytes are buffered; false at end of stream. */
  async #fill(wanted: number): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#inStart > 0 && this.#inStart + wanted > this.#inbox.length) {
      this.#inbox.copyWithin(0, this.#inStart, this.#inEnd);
      this.#inEnd -= this.#inStart;
      this.#inStart = 0;
    }
    while (this.#inEnd - this.#inStart < wanted) {
      const n = await this.#conn.read(this.#inbox.subarray(this.#inEnd));
      if (n === null) {
        this.#eof = true;
        return false;
      }
      this.#inEnd += n;
    }
    return true;
  }
}
