/**
 * DNS messages (RFC 1035 §4), as much as a stub resolver needs: one A or AAAA question out, and
 * the answer back read into addresses, a TTL, or a negative result with its caching time.
 *
 * ```
 * +----+-------------------------------------+---------+---------+---------+---------+
 * | ID | QR|OPCODE(4)|AA|TC|RD|RA|Z(3)|RCODE | QDCOUNT | ANCOUNT | NSCOUNT | ARCOUNT |
 * | u16| u16                                 | u16     | u16     | u16     | u16     |
 * +----+-------------------------------------+---------+---------+---------+---------+
 * question: QNAME (labels) | QTYPE u16 | QCLASS u16
 * records:  NAME (labels or pointer) | TYPE u16 | CLASS u16 | TTL u32 | RDLENGTH u16 | RDATA
 * label:    0b00LLLLLL then L bytes; 0x00 ends the name
 * pointer:  0b11OOOOOO OOOOOOOO — the rest of the name is at offset O of the message
 * ```
 *
 * Every message is untrusted: lengths are checked against the message; compression pointers must
 * point strictly backward (RFC 1035 §4.1.4: "a prior occurance"), at most 32 of them per name,
 * and a name ends within 255 octets; so every walk ends, pointer loops included. Malformed input
 * throws `DnsFormatError`.
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { formatIpv4, formatIpv6 } from "./address.ts";

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_AAAA = 28;
const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

/** The question types this codec asks. */
export type QueryType = typeof TYPE_A | typeof TYPE_AAAA;

const HEADER_LENGTH = 12;
const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
/** RFC 1035 §2.3.4: 255 octets on the wire, which is 253 characters in text. */
const MAX_NAME_TEXT = 253;
const MAX_NAME_WIRE = 255;
const MAX_LABEL = 63;
/** A longer chain is a loop or abuse; resolvers give up well before this. */
const MAX_CNAME_CHAIN = 16;
/**
 * Compression pointers followed within one name. Backward pointers and the 255-octet bound
 * already end every walk, but a chain of pointers to pointers could take thousands of steps;
 * real names need a few.
 */
const MAX_POINTERS = 32;
/** RFC 2181 §8: a TTL with the top bit set is treated as zero. */
const MAX_TTL = 0x7fff_ffff;

/** A response that breaks the wire format (bounds, pointers, lengths, counts). */
export class DnsFormatError extends ProtocolError {
  constructor(detail: string) {
    super("ERR_RESOLVE", `Malformed DNS message: ${detail}`);
    this.name = "DnsFormatError";
  }
}

/** A name that cannot be asked: too long, an empty or over-long label, or a bad character. */
export class DnsNameError extends ProtocolError {
  constructor(name: string, detail: string) {
    super("ERR_RESOLVE", `Invalid DNS name "${name.slice(0, 300)}": ${detail}`);
    this.name = "DnsNameError";
  }
}

/** A query ready to send, and what its answer must echo. */
export interface DnsQuery {
  readonly id: number;
  /** Lower case, without the final dot. */
  readonly name: string;
  readonly type: QueryType;
  readonly bytes: Uint8Array;
}

/** The header and the question: enough to tell whether a datagram answers our query. */
export interface DnsResponseHead {
  readonly id: number;
  /** QR bit: set in responses. */
  readonly isResponse: boolean;
  /** TC bit: the answer did not fit; ask again over TCP. */
  readonly truncated: boolean;
  readonly rcode: number;
  /** The one question, or undefined when QDCOUNT is 0 (some error responses). */
  readonly question:
    | { readonly name: string; readonly type: number; readonly class: number }
    | undefined;
}

/** One resource record; `data` is decoded for the types this codec uses, else undefined. */
export interface DnsRecord {
  /** Lower case, without the final dot. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  /** A/AAAA: the address text; CNAME: the target name; SOA: the fields; else undefined. */
  readonly data: string | SoaData | undefined;
}

export interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly minimum: number;
}

export interface DnsResponse extends DnsResponseHead {
  readonly answers: readonly DnsRecord[];
  readonly authority: readonly DnsRecord[];
}

/** What a response says about the question, once read. */
export type DnsOutcome =
  | { readonly kind: "answer"; readonly addresses: readonly string[]; readonly ttlS: number }
  /**
   * The name does not exist (NXDOMAIN) or has no record of the type (NODATA). `ttlS` is the
   * RFC 2308 §5 caching time, min(SOA TTL, SOA MINIMUM), or undefined without an SOA: such
   * answers must not be cached (RFC 2308 §5).
   */
  | { readonly kind: "nxdomain" | "nodata"; readonly ttlS: number | undefined }
  /** The server could not answer: REFUSED, or SERVFAIL (also for FORMERR, NOTIMP, unknown). */
  | { readonly kind: "servfail" | "refused"; readonly rcode: number };

/**
 * Lower-cases `name`, drops one final dot, and checks it against RFC 1035 limits: at most 253
 * characters, labels of 1 to 63, printable ASCII (callers convert IDNs to punycode first).
 * Throws `DnsNameError`.
 */
export function normalizeName(name: string): string {
  const bare = name.endsWith(".") ? name.slice(0, -1) : name;
  if (bare.length === 0) throw new DnsNameError(name, "empty");
  if (bare.length > MAX_NAME_TEXT) {
    throw new DnsNameError(name, `${bare.length} characters, at most ${MAX_NAME_TEXT}`);
  }
  // The backslash is left out: it is the escape character of names read back from responses.
  if (!/^[\x21-\x5b\x5d-\x7e]+$/.test(bare)) {
    throw new DnsNameError(
      name,
      "expected printable ASCII without backslashes (punycode for IDNs)",
    );
  }
  for (const label of bare.split(".")) {
    if (label.length === 0) throw new DnsNameError(name, "empty label");
    if (label.length > MAX_LABEL) {
      throw new DnsNameError(name, `label of ${label.length} characters, at most ${MAX_LABEL}`);
    }
  }
  return bare.toLowerCase();
}

/**
 * Builds a recursive query (RD set) for one A or AAAA question. The ID is random unless given:
 * with the random source port it is what makes a forged answer hard to guess (RFC 5452).
 */
export function encodeQuery(
  name: string,
  type: QueryType,
  options: { id?: number } = {},
): DnsQuery {
  const normalized = normalizeName(name);
  const id = options.id ?? crypto.getRandomValues(new Uint16Array(1))[0]!;
  const labels = normalized.split(".");
  const nameLength = labels.reduce((sum, label) => sum + 1 + label.length, 1);
  const bytes = new Uint8Array(HEADER_LENGTH + nameLength + 4);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, id);
  view.setUint16(2, FLAG_RD);
  view.setUint16(4, 1); // QDCOUNT
  let at = HEADER_LENGTH;
  for (const label of labels) {
    bytes[at++] = label.length;
    for (let i = 0; i < label.length; i++) bytes[at++] = label.charCodeAt(i);
  }
  bytes[at++] = 0;
  view.setUint16(at, type);
  view.setUint16(at + 2, CLASS_IN);
  return { id, name: normalized, type, bytes };
}

/** Reads the header and the question only; throws `DnsFormatError`. */
export function decodeResponseHead(message: Uint8Array): DnsResponseHead {
  return new Reader(message).head();
}

/** Reads a whole response: header, question, answer and authority sections. */
export function decodeResponse(message: Uint8Array): DnsResponse {
  const reader = new Reader(message);
  const head = reader.head();
  const answers = reader.records(reader.count(6));
  const authority = reader.records(reader.count(8));
  // The additional section is not used; it is not read.
  return { ...head, answers, authority };
}

/** Whether `head` answers `query`: same ID, QR set, and the same question (name case-blind). */
export function answersQuery(head: DnsResponseHead, query: DnsQuery): boolean {
  return head.id === query.id && head.isResponse && head.question !== undefined &&
    head.question.name === query.name && head.question.type === query.type &&
    head.question.class === CLASS_IN;
}

/**
 * What `response` says about `query`: follows the CNAME chain from the question name, takes the
 * addresses of the chain's last name, and reports the smallest TTL on the way. Throws
 * `DnsFormatError` for a CNAME chain that loops or is too long.
 */
export function interpretResponse(response: DnsResponse, query: DnsQuery): DnsOutcome {
  if (response.rcode === RCODE_REFUSED) return { kind: "refused", rcode: response.rcode };
  if (response.rcode !== RCODE_NOERROR && response.rcode !== RCODE_NXDOMAIN) {
    return { kind: "servfail", rcode: response.rcode };
  }
  const answers = response.answers.filter((record) => record.class === CLASS_IN);
  let name = query.name;
  let chainTtl = MAX_TTL;
  const seen = new Set([name]);
  for (;;) {
    const cname = answers.find((record) => record.type === TYPE_CNAME && record.name === name);
    if (!cname) break;
    const target = cname.data as string;
    if (seen.has(target)) throw new DnsFormatError(`CNAME loop at "${target}"`);
    if (seen.size >= MAX_CNAME_CHAIN) {
      throw new DnsFormatError(`CNAME chain longer than ${MAX_CNAME_CHAIN}`);
    }
    seen.add(target);
    chainTtl = Math.min(chainTtl, cname.ttl);
    name = target;
  }
  const found = answers.filter((record) => record.type === query.type && record.name === name);
  if (response.rcode === RCODE_NOERROR && found.length > 0) {
    const ttlS = found.reduce((ttl, record) => Math.min(ttl, record.ttl), chainTtl);
    return { kind: "answer", addresses: found.map((record) => record.data as string), ttlS };
  }
  const soa = response.authority.find((record) => record.type === TYPE_SOA);
  const ttlS = soa ? Math.min(soa.ttl, (soa.data as SoaData).minimum, chainTtl) : undefined;
  return { kind: response.rcode === RCODE_NXDOMAIN ? "nxdomain" : "nodata", ttlS };
}

/** A cursor over one message; every read is bounds-checked. */
class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = HEADER_LENGTH;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  head(): DnsResponseHead {
    if (this.#bytes.length < HEADER_LENGTH) {
      throw new DnsFormatError(
        `header too short: expected ${HEADER_LENGTH}, got ${this.#bytes.length}`,
      );
    }
    const flags = this.#view.getUint16(2);
    const qdcount = this.count(4);
    if (qdcount > 1) throw new DnsFormatError(`expected at most 1 question, got ${qdcount}`);
    this.#at = HEADER_LENGTH;
    let question: DnsResponseHead["question"];
    if (qdcount === 1) {
      const name = this.name();
      const type = this.u16();
      question = { name, type, class: this.u16() };
    }
    return {
      id: this.count(0),
      isResponse: (flags & FLAG_QR) !== 0,
      truncated: (flags & FLAG_TC) !== 0,
      rcode: flags & 0x000f,
      question,
    };
  }

  /** The u16 at a fixed header offset. */
  count(offset: number): number {
    return this.#view.getUint16(offset);
  }

  records(count: number): DnsRecord[] {
    const out: DnsRecord[] = [];
    // Each record takes at least 11 bytes, so a forged count ends at the message's end.
    for (let i = 0; i < count; i++) out.push(this.record());
    return out;
  }

  record(): DnsRecord {
    const name = this.name();
    const type = this.u16();
    const klass = this.u16();
    const rawTtl = this.u32();
    const length = this.u16();
    const start = this.#at;
    const end = start + length;
    if (end > this.#bytes.length) {
      throw new DnsFormatError(`record data of ${length} bytes runs past the message end`);
    }
    let data: DnsRecord["data"];
    if (klass === CLASS_IN && type === TYPE_A) {
      if (length !== 4) throw new DnsFormatError(`A record of ${length} bytes, expected 4`);
      data = formatIpv4(this.#bytes.subarray(start, end));
    } else if (klass === CLASS_IN && type === TYPE_AAAA) {
      if (length !== 16) throw new DnsFormatError(`AAAA record of ${length} bytes, expected 16`);
      data = formatIpv6(this.#bytes.subarray(start, end));
    } else if (type === TYPE_CNAME) {
      data = this.name();
      this.#expectAt(end, "CNAME");
    } else if (type === TYPE_SOA) {
      const mname = this.name();
      const rname = this.name();
      const serial = this.u32();
      this.#at += 12; // refresh, retry, expire
      const minimum = this.u32();
      this.#expectAt(end, "SOA");
      data = { mname, rname, serial, minimum: clampTtl(minimum) };
    }
    this.#at = end;
    return { name, type, class: klass, ttl: clampTtl(rawTtl), data };
  }

  /** Reads a possibly compressed name; bounded by the backward-pointer rule and 255 octets. */
  name(): string {
    const labels: string[] = [];
    let wireLength = 1;
    let at = this.#at;
    let resumeAt: number | undefined;
    let pointers = 0;
    for (;;) {
      if (at >= this.#bytes.length) throw new DnsFormatError("name runs past the message end");
      const length = this.#bytes[at]!;
      if (length === 0) {
        at += 1;
        break;
      }
      const kind = length & 0xc0;
      if (kind === 0xc0) {
        if (at + 1 >= this.#bytes.length) throw new DnsFormatError("pointer cut short");
        const target = ((length & 0x3f) << 8) | this.#bytes[at + 1]!;
        if (target >= at) {
          throw new DnsFormatError(`compression pointer at ${at} to ${target} does not point back`);
        }
        if (++pointers > MAX_POINTERS) {
          throw new DnsFormatError(`more than ${MAX_POINTERS} compression pointers in a name`);
        }
        resumeAt ??= at + 2;
        at = target;
        continue;
      }
      if (kind !== 0) throw new DnsFormatError(`unsupported label type 0x${length.toString(16)}`);
      wireLength += 1 + length;
      if (wireLength > MAX_NAME_WIRE) {
        throw new DnsFormatError(`name longer than ${MAX_NAME_WIRE} octets`);
      }
      if (at + 1 + length > this.#bytes.length) {
        throw new DnsFormatError("label runs past the message end");
      }
      labels.push(labelText(this.#bytes.subarray(at + 1, at + 1 + length)));
      at += 1 + length;
    }
    this.#at = resumeAt ?? at;
    return labels.join(".");
  }

  u16(): number {
    this.#need(2);
    const value = this.#view.getUint16(this.#at);
    this.#at += 2;
    return value;
  }

  u32(): number {
    this.#need(4);
    const value = this.#view.getUint32(this.#at);
    this.#at += 4;
    return value;
  }

  #need(n: number): void {
    if (this.#at + n > this.#bytes.length) {
      throw new DnsFormatError(
        `expected ${n} bytes at offset ${this.#at}, got ${
          Math.max(0, this.#bytes.length - this.#at)
        }`,
      );
    }
  }

  #expectAt(end: number, what: string): void {
    if (this.#at !== end) throw new DnsFormatError(`${what} data does not fill its length`);
  }
}

/**
 * A label as lower-case text. Bytes that are not printable ASCII, and the dot, are written as
 * `\DDD` (RFC 1035 §5.1), so a hostile label cannot pose as two labels or as another name.
 */
function labelText(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) {
    if (byte > 0x20 && byte < 0x7f && byte !== 0x2e && byte !== 0x5c) {
      text += String.fromCharCode(byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte);
    } else {
      text += `\\${byte.toString().padStart(3, "0")}`;
    }
  }
  return text;
}

function clampTtl(ttl: number): number {
  return ttl > MAX_TTL ? 0 : ttl;
}
