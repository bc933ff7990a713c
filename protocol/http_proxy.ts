/**
 * HTTP/1.x forward-proxy codecs for the local side (RFC 9110, RFC 9112): request and response
 * heads, the proxy's request-target rules, body framing, hop-by-hop field removal, a scanner that
 * finds the end of a chunked body, Basic proxy credentials and our own error responses. Pure:
 * parsers return `undefined` while the input is a strict prefix of a head ("need more").
 *
 * ```
 * request head   method SP request-target SP HTTP/1.x CRLF       (bare LF is tolerated)
 *                *( field-name ":" OWS field-value OWS CRLF )     (name case kept as sent)
 *                CRLF
 * response head  HTTP/1.x SP 3DIGIT SP [ reason-phrase ] CRLF, fields, CRLF
 * chunked body   *( chunk-size [ ; ext ] CRLF chunk-data CRLF )
 *                "0" [ ; ext ] CRLF *( trailer-field CRLF ) CRLF  (CRLF required here)
 * ```
 *
 * Bodies are passed through unchanged (no re-framing), so a chunked request stays chunked on the
 * upstream hop and the relay only needs to know where each body ends.
 * @module
 */
import { type Address, addressFromHost } from "./address.ts";
import { ProtocolError, type ProtocolErrorCode } from "./errors.ts";

/**
 * Largest head we read, request or response, counting the request line, every field line and
 * the empty line that ends the head. A larger head gets 431 (502 from upstream). The connection's
 * read buffer must hold this many bytes for the parser to reach its own verdict.
 */
export const MAX_HEAD_SIZE = 64 * 1024;
/** Longest request line (or status line) without its line ending; RFC 9112 §3 asks for ≥ 8000. */
export const MAX_REQUEST_LINE_SIZE = 16 * 1024;
/** Longest field line without its line ending; longer gets 431. */
export const MAX_FIELD_LINE_SIZE = 16 * 1024;
/** Most field lines in one head (and trailer lines in one chunked body); more gets 431. */
export const MAX_FIELD_COUNT = 100;
/** Longest chunk-size line, chunk extensions included. */
export const MAX_CHUNK_LINE_SIZE = 4096;

/** A failure that is answered with an HTTP status before closing. */
export class HttpError extends ProtocolError {
  /** The status to answer the client with: 400, 414, 431, 505, or 502 for upstream faults. */
  readonly status: number;
  /** `code` defaults to `ERR_CLIENT_PROTOCOL`: the client spoke HTTP in a way we do not serve. */
  constructor(
    status: number,
    message: string,
    options: ErrorOptions & { code?: ProtocolErrorCode } = {},
  ) {
    super(options.code ?? "ERR_CLIENT_PROTOCOL", message, options);
    this.name = "HttpError";
    this.status = status;
  }
}

/** Which peer sent the bytes: the client's faults get their 4xx, the upstream's all get 502. */
export type HttpSide = "request" | "response";

function fail(side: HttpSide, status: number, message: string): never {
  if (side === "request") throw new HttpError(status, message);
  throw new HttpError(502, `Invalid upstream response: ${message}`, { code: "ERR_RELAY_TARGET" });
}

export interface HttpField {
  /** The name as the peer spelled it (some clients need their header case back). */
  readonly name: string;
  /** Latin-1 text of the value bytes, without the surrounding whitespace. */
  readonly value: string;
}

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  readonly fields: readonly HttpField[];
  /** Bytes of the head, its ending empty line (and any empty lines before it) included. */
  readonly length: number;
}

export interface ResponseHead {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  readonly fields: readonly HttpField[];
  readonly length: number;
}

const CR = 0x0d;
const LF = 0x0a;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a request head. Throws `HttpError` with 400 for a malformed request line or field line
 * (whitespace before the colon and obs-fold included), 414 for a request line over
 * `MAX_REQUEST_LINE_SIZE`, 431 for a field line over `MAX_FIELD_LINE_SIZE`, more than
 * `MAX_FIELD_COUNT` fields or a head over `MAX_HEAD_SIZE`, 505 for a version other than
 * HTTP/1.0 and HTTP/1.1 (`PRI * HTTP/2.0` included).
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead | undefined {
  const head = readHead(bytes, "request");
  if (!head) return undefined;
  const match = /^([^ ]+) ([^ ]+) ([^ ]+)$/.exec(head.start);
  if (!match || !TOKEN.test(match[1]!) || !/^[\x21-\x7e]+$/.test(match[2]!)) {
    throw new HttpError(400, "Invalid request line: expected method SP request-target SP version");
  }
  const version = match[3]!;
  if (version !== "HTTP/1.0" && version !== "HTTP/1.1") {
    if (/^HTTP\/\d\.\d$/.test(version)) {
      throw new HttpError(505, `Unsupported HTTP version "${version}": expected HTTP/1.0 or 1.1`);
    }
    throw new HttpError(400, "Invalid request line: no HTTP version");
  }
  return {
    method: match[1]!,
    target: match[2]!,
    version,
    fields: head.fields,
    length: head.length,
  };
}

/**
 * Parses the upstream's response head. Every fault, obs-fold and size limits included, is an
 * `HttpError` with status 502 and code `ERR_RELAY_TARGET`.
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead | undefined {
  const head = readHead(bytes, "response");
  if (!head) return undefined;
  // The SP before an empty reason is required by RFC 9112 §4 but often missing; tolerate that.
  const match = /^(HTTP\/1\.\d) ([1-9]\d\d)(?: (.*))?$/.exec(head.start);
  if (!match || !FIELD_VALUE.test(match[3] ?? "")) fail("response", 502, "invalid status line");
  return {
    version: match[1]!,
    status: Number(match[2]),
    reason: match[3] ?? "",
    fields: head.fields,
    length: head.length,
  };
}

interface RawHead {
  readonly start: string;
  readonly fields: HttpField[];
  readonly length: number;
}

/** Splits a head into its start line and fields; the limits are checked as lines arrive. */
function readHead(bytes: Uint8Array, side: HttpSide): RawHead | undefined {
  const view = bytes.length > MAX_HEAD_SIZE ? bytes.subarray(0, MAX_HEAD_SIZE) : bytes;
  let start: string | undefined;
  const fields: HttpField[] = [];
  let pos = 0;
  for (;;) {
    const lf = view.indexOf(LF, pos);
    if (lf < 0) {
      const pending = view.length - pos - (view[view.length - 1] === CR ? 1 : 0);
      checkLineLength(side, start === undefined, pending);
      if (view.length === MAX_HEAD_SIZE) {
        fail(side, 431, `Header section longer than ${MAX_HEAD_SIZE} bytes`);
      }
      return undefined;
    }
    const end = lf > pos && view[lf - 1] === CR ? lf - 1 : lf;
    checkLineLength(side, start === undefined, end - pos);
    const line = view.subarray(pos, end);
    pos = lf + 1;
    if (start === undefined) {
      // RFC 9112 §2.2: empty lines before the start line are ignored (a client's stray CRLF).
      if (line.length > 0) start = latin1(line);
      continue;
    }
    if (line.length === 0) return { start, fields, length: pos };
    if (fields.length === MAX_FIELD_COUNT) {
      fail(side, 431, `More than ${MAX_FIELD_COUNT} header fields`);
    }
    fields.push(parseFieldLine(line, side));
  }
}

function checkLineLength(side: HttpSide, startLine: boolean, length: number): void {
  if (startLine && length > MAX_REQUEST_LINE_SIZE) {
    fail(side, 414, `Request line longer than ${MAX_REQUEST_LINE_SIZE} bytes`);
  }
  if (!startLine && length > MAX_FIELD_LINE_SIZE) {
    fail(side, 431, `Header field line longer than ${MAX_FIELD_LINE_SIZE} bytes`);
  }
}

function parseFieldLine(line: Uint8Array, side: HttpSide): HttpField {
  if (line[0] === 0x20 || line[0] === 0x09) {
    fail(side, 400, "Obsolete line folding (a field line starting with whitespace)");
  }
  const colon = line.indexOf(0x3a);
  if (colon < 0) fail(side, 400, "Invalid header field line: no colon");
  const name = latin1(line.subarray(0, colon));
  if (/[ \t]$/.test(name)) fail(side, 400, "Whitespace between header field name and colon");
  if (!TOKEN.test(name)) fail(side, 400, "Invalid header field name");
  const value = latin1(line.subarray(colon + 1)).replace(/^[ \t]+|[ \t]+$/g, "");
  if (!FIELD_VALUE.test(value)) fail(side, 400, `Invalid value of header field "${name}"`);
  return { name, value };
}

/** Every value of the field `name` (case-insensitive), in order. */
export function fieldValues(
  head: { readonly fields: readonly HttpField[] },
  name: string,
): string[] {
  const wanted = name.toLowerCase();
  return head.fields.filter((f) => f.name.toLowerCase() === wanted).map((f) => f.value);
}

/** The comma-separated elements of every `name` field, lower case, empty ones dropped. */
function listElements(head: { readonly fields: readonly HttpField[] }, name: string): string[] {
  return fieldValues(head, name)
    .flatMap((value) => value.split(","))
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== "");
}

// --- request target -----------------------------------------------------------------------

export type ProxyTarget =
  | { readonly kind: "connect"; readonly address: Address }
  | {
    readonly kind: "forward";
    readonly address: Address;
    /** `path?query` for the upstream request line (`/` when empty, `*` for OPTIONS). */
    readonly originForm: string;
    /** The new `Host` value: the target's host as written, `:port` unless 80. */
    readonly host: string;
  };

/**
 * Where a proxy request goes (RFC 9112 §3.2). CONNECT takes authority-form with a mandatory port
 * (RFC 9110 §9.3.6); other methods take absolute-form `http://` URIs (default port 80, userinfo
 * dropped). Throws `HttpError` 400 for origin-form and asterisk-form (we are not a transparent
 * proxy), `https://` outside CONNECT (we do not terminate TLS), other schemes, a fragment, an
 * invalid host or port, IPv6 without brackets, and for a missing (HTTP/1.1) or repeated `Host`
 * field (RFC 9112 §3.2, MUST).
 */
export function proxyRequestTarget(head: RequestHead): ProxyTarget {
  const hosts = fieldValues(head, "host").length;
  if (hosts > 1) throw new HttpError(400, "More than one Host header field");
  if (hosts === 0 && head.version === "HTTP/1.1") {
    throw new HttpError(400, "HTTP/1.1 request without a Host header field");
  }
  const target = head.target;
  if (head.method === "CONNECT") {
    return { kind: "connect", address: parseAuthority(target, undefined).address };
  }
  if (target.startsWith("/") || target === "*") {
    throw new HttpError(400, "Request target is not absolute-form: this is a forward proxy");
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target)?.[1]?.toLowerCase();
  if (scheme !== "http") {
    throw new HttpError(
      400,
      scheme === "https"
        ? "Absolute-form https:// target: use CONNECT for TLS"
        : "Unsupported request target: expected an http:// URI",
    );
  }
  if (target.includes("#")) throw new HttpError(400, "Request target contains a fragment");
  const rest = target.slice("http://".length);
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const pathAndQuery = authorityEnd < 0 ? "" : rest.slice(authorityEnd);
  const { address, hostText } = parseAuthority(authority.slice(authority.lastIndexOf("@") + 1), 80);
  const queryAt = pathAndQuery.indexOf("?");
  const path = queryAt < 0 ? pathAndQuery : pathAndQuery.slice(0, queryAt);
  const query = queryAt < 0 ? "" : pathAndQuery.slice(queryAt);
  // RFC 9112 §3.2.4: OPTIONS for a server as a whole travels as `http://host` and leaves as `*`.
  const originForm = head.method === "OPTIONS" && pathAndQuery === "" ? "*" : (path || "/") + query;
  const host = address.port === 80 ? hostText : `${hostText}:${address.port}`;
  return { kind: "forward", address, originForm, host };
}

/** `host[:port]` with IPv6 in brackets; `defaultPort` undefined means the port is mandatory. */
function parseAuthority(
  text: string,
  defaultPort: number | undefined,
): { address: Address; hostText: string } {
  let hostText: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw badTarget("Invalid target host: unclosed bracket");
    hostText = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) {
      throw badTarget("Invalid target: expected a port after the bracketed host");
    }
    portText = rest === "" ? undefined : rest.slice(1);
  } else {
    const parts = text.split(":");
    if (parts.length > 2) {
      throw badTarget("Invalid target host: put an IPv6 address in brackets");
    }
    hostText = parts[0]!;
    portText = parts[1];
  }
  let port: number;
  if (portText === undefined || (portText === "" && defaultPort !== undefined)) {
    if (defaultPort === undefined) throw badTarget("CONNECT target without a port");
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw badTarget(`Invalid target port "${portText}": expected 1 to 65535`);
    }
    port = Number(portText);
  }
  if (hostText.startsWith("[")) {
    const address = addressFromHost(hostText, port);
    if (address.type !== "ipv6") {
      throw badTarget("Invalid target host: brackets must hold an IPv6 address");
    }
    return { address, hostText };
  }
  if (!/^[A-Za-z0-9_.-]{1,255}$/.test(hostText)) {
    throw badTarget("Invalid target host: expected a name or an IP address");
  }
  return { address: addressFromHost(hostText, port), hostText };
}

/** A target address we cannot use: 400 to the client, `ERR_READ_ADDRESS` for the session. */
function badTarget(message: string): HttpError {
  return new HttpError(400, message, { code: "ERR_READ_ADDRESS" });
}

// --- framing --------------------------------------------------------------------------------

export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" };

/** A response body may also run until the upstream closes. */
export type ResponseFraming = BodyFraming | { readonly kind: "close" };

/**
 * How the request body is delimited (RFC 9112 §6.3). Throws `HttpError` 400 for both
 * `Transfer-Encoding` and `Content-Length` (smuggling), a transfer coding list that does not end
 * in exactly one `chunked`, `Transfer-Encoding` in an HTTP/1.0 request, and a `Content-Length`
 * that is not a number or lists different numbers. No TE and no CL means no body.
 */
export function requestBodyFraming(head: RequestHead): BodyFraming {
  const codings = fieldValues(head, "transfer-encoding");
  const lengths = fieldValues(head, "content-length");
  if (codings.length > 0) {
    if (lengths.length > 0) {
      throw new HttpError(400, "Request has both Transfer-Encoding and Content-Length");
    }
    if (head.version === "HTTP/1.0") {
      throw new HttpError(400, "Transfer-Encoding in an HTTP/1.0 request");
    }
    if (!endsChunked(head)) {
      throw new HttpError(400, "Request Transfer-Encoding does not end in one chunked coding");
    }
    return { kind: "chunked" };
  }
  const length = contentLength(lengths, "request");
  return length === undefined ? { kind: "none" } : { kind: "length", length };
}

/**
 * How the response body is delimited (RFC 9112 §6.3): none after HEAD and for 1xx, 204 and 304;
 * chunked when the last transfer coding is chunked, else until close; then Content-Length; else
 * until close. An invalid Content-Length or TE in an HTTP/1.0 response is a 502 `HttpError`.
 */
export function responseBodyFraming(requestMethod: string, head: ResponseHead): ResponseFraming {
  if (
    requestMethod === "HEAD" || head.status < 200 || head.status === 204 || head.status === 304
  ) {
    return { kind: "none" };
  }
  if (fieldValues(head, "transfer-encoding").length > 0) {
    if (head.version === "HTTP/1.0") fail("response", 502, "Transfer-Encoding in HTTP/1.0");
    return endsChunked(head) ? { kind: "chunked" } : { kind: "close" };
  }
  const length = contentLength(fieldValues(head, "content-length"), "response");
  return length === undefined ? { kind: "close" } : { kind: "length", length };
}

function endsChunked(head: { readonly fields: readonly HttpField[] }): boolean {
  const codings = listElements(head, "transfer-encoding").map((c) => c.split(";")[0]!.trim());
  return codings.at(-1) === "chunked" && codings.indexOf("chunked") === codings.length - 1;
}

/** `5` and `5, 5` are one length (RFC 9112 §6.3 allows that list); anything else fails. */
function contentLength(values: readonly string[], side: HttpSide): number | undefined {
  let length: number | undefined;
  for (const item of values.flatMap((value) => value.split(","))) {
    const text = item.trim();
    if (!/^\d{1,15}$/.test(text)) fail(side, 400, "Invalid Content-Length");
    if (length !== undefined && length !== Number(text)) {
      fail(side, 400, "Content-Length lists different lengths");
    }
    length = Number(text);
  }
  return length;
}

// --- forwarding -----------------------------------------------------------------------------

/** Removed in both directions whether or not `Connection` names them (RFC 9110 §7.6.1, §11.7). */
const HOP_BY_HOP = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "te",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
];
/**
 * Never removed because `Connection` lists them: we pass bodies through unchanged, so dropping a
 * framing field would make the next hop read the body differently from us (a smuggling trick).
 */
const FRAMING = new Set(["content-length", "transfer-encoding", "host"]);

function hopByHopNames(head: { readonly fields: readonly HttpField[] }): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (
    const name of [...listElements(head, "connection"), ...listElements(head, "proxy-connection")]
  ) {
    if (TOKEN.test(name) && !FRAMING.has(name)) names.add(name);
  }
  return names;
}

/**
 * Serializes the request head for the upstream hop: the request line in origin-form with the
 * client's version (so an HTTP/1.0 client never gets a chunked response it cannot read), `Host`
 * first and rebuilt from the target (RFC 9112 §3.2.2), hop-by-hop fields removed, then our
 * `Connection` (`close` unless `keepAlive`). The body is passed through, so `Transfer-Encoding:
 * chunked` and `Content-Length` stay as they are; call `requestBodyFraming` first, which refuses
 * the framings that could not be passed through safely. Field names keep the client's case.
 */
export function forwardRequestHead(
  head: RequestHead,
  target: Extract<ProxyTarget, { kind: "forward" }>,
  options: { keepAlive?: boolean } = {},
): Uint8Array {
  const drop = hopByHopNames(head);
  drop.add("host");
  const hostName = head.fields.find((f) => f.name.toLowerCase() === "host")?.name ?? "Host";
  const lines = [
    `${head.method} ${target.originForm} ${head.version}`,
    `${hostName}: ${target.host}`,
  ];
  for (const field of head.fields) {
    if (!drop.has(field.name.toLowerCase())) lines.push(`${field.name}: ${field.value}`);
  }
  lines.push(`Connection: ${options.keepAlive ? "keep-alive" : "close"}`);
  return latin1Bytes(lines.join("\r\n") + "\r\n\r\n");
}

/**
 * Whether the client connection may carry another request after this one (RFC 9112 §9.3):
 * HTTP/1.1 unless `Connection` or `Proxy-Connection` says `close`; never for HTTP/1.0, as a proxy
 * MUST NOT keep a persistent connection with an HTTP/1.0 client.
 */
export function wantsKeepAlive(head: RequestHead): boolean {
  if (head.version !== "HTTP/1.1") return false;
  return ![...listElements(head, "connection"), ...listElements(head, "proxy-connection")]
    .includes("close");
}

/**
 * Serializes the upstream's response head for the client: status line as received, hop-by-hop
 * fields (`Proxy-Authenticate` included) removed, `Content-Length` removed when
 * `Transfer-Encoding` is present (RFC 9112 §6.3), then our `Connection` (not on 1xx interim
 * responses, which a final response follows on the same connection).
 */
export function forwardResponseHead(head: ResponseHead, keepAlive: boolean): Uint8Array {
  const drop = hopByHopNames(head);
  if (fieldValues(head, "transfer-encoding").length > 0) drop.add("content-length");
  const lines = [`${head.version} ${head.status} ${head.reason}`];
  for (const field of head.fields) {
    if (!drop.has(field.name.toLowerCase())) lines.push(`${field.name}: ${field.value}`);
  }
  if (head.status >= 200) lines.push(`Connection: ${keepAlive ? "keep-alive" : "close"}`);
  return latin1Bytes(lines.join("\r\n") + "\r\n\r\n");
}

// --- chunked bodies -------------------------------------------------------------------------

const enum Chunk {
  Size,
  SizeSpace,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  EndLf,
  Done,
}

/**
 * Finds where a chunked body ends while the relay passes its bytes through unchanged. Feed every
 * body byte in order; `feed` returns how many bytes of that call belong to the body once it has
 * ended (the rest is the next message), and -1 while it has not. After the end it returns 0.
 * Line endings must be CRLF here: the next hop reads the same bytes, and a strict reading turns
 * any disagreement about where the body ends into an error instead of a smuggled request.
 * Throws `HttpError` (400, or 502 with `{ side: "response" }`) for malformed framing, a chunk
 * size over 2^52, a chunk line over `MAX_CHUNK_LINE_SIZE` or too many or too long trailer lines.
 */
export class ChunkedScanner {
  readonly #side: HttpSide;
  #state = Chunk.Size;
  #size = 0;
  #digits = 0;
  #line = 0;
  #trailers = 0;

  constructor(options: { side?: HttpSide } = {}) {
    this.#side = options.side ?? "request";
  }

  /** Whether the last chunk and the trailer section have been seen. */
  get done(): boolean {
    return this.#state === Chunk.Done;
  }

  feed(bytes: Uint8Array): number {
    if (this.#state === Chunk.Done) return 0;
    for (let i = 0; i < bytes.length; i++) {
      if (this.#state === Chunk.Data) {
        const take = Math.min(this.#size, bytes.length - i);
        this.#size -= take;
        i += take - 1;
        if (this.#size === 0) this.#state = Chunk.DataCr;
        continue;
      }
      if (this.#step(bytes[i]!)) return i + 1;
    }
    return -1;
  }

  /** Advances by one byte outside chunk data; true when the body has ended. */
  #step(byte: number): boolean {
    switch (this.#state) {
      case Chunk.Size: {
        const digit = hexValue(byte);
        if (digit >= 0) {
          if (this.#size >= 2 ** 48) this.#fail("chunk size too large");
          this.#size = this.#size * 16 + digit;
          this.#digits++;
        } else if (this.#digits === 0) {
          this.#fail("chunk size is not hexadecimal");
        } else if (byte === 0x20 || byte === 0x09) {
          this.#state = Chunk.SizeSpace;
        } else if (byte === 0x3b) {
          this.#state = Chunk.Extension;
        } else if (byte === CR) {
          this.#state = Chunk.SizeLf;
        } else {
          this.#fail("invalid character after chunk size");
        }
        return this.#countLine(MAX_CHUNK_LINE_SIZE);
      }
      case Chunk.SizeSpace:
        if (byte === 0x3b) this.#state = Chunk.Extension;
        else if (byte === CR) this.#state = Chunk.SizeLf;
        else if (byte !== 0x20 && byte !== 0x09) this.#fail("invalid character after chunk size");
        return this.#countLine(MAX_CHUNK_LINE_SIZE);
      case Chunk.Extension:
        if (byte === CR) this.#state = Chunk.SizeLf;
        else if (!isTextByte(byte)) this.#fail("invalid character in chunk extension");
        return this.#countLine(MAX_CHUNK_LINE_SIZE);
      case Chunk.SizeLf:
        this.#expect(byte, LF);
        this.#line = 0;
        this.#digits = 0;
        this.#state = this.#size === 0 ? Chunk.TrailerStart : Chunk.Data;
        return false;
      case Chunk.DataCr:
        this.#expect(byte, CR);
        this.#state = Chunk.DataLf;
        return false;
      case Chunk.DataLf:
        this.#expect(byte, LF);
        this.#state = Chunk.Size;
        return false;
      case Chunk.TrailerStart:
        if (byte === CR) {
          this.#state = Chunk.EndLf;
          return false;
        }
        if (++this.#trailers > MAX_FIELD_COUNT) this.#fail("too many trailer fields");
        this.#state = Chunk.Trailer;
        return this.#trailerByte(byte);
      case Chunk.Trailer:
        return this.#trailerByte(byte);
      case Chunk.TrailerLf:
        this.#expect(byte, LF);
        this.#line = 0;
        this.#state = Chunk.TrailerStart;
        return false;
      case Chunk.EndLf:
        this.#expect(byte, LF);
        this.#state = Chunk.Done;
        return true;
      default:
        return false;
    }
  }

  #trailerByte(byte: number): boolean {
    if (byte === CR) this.#state = Chunk.TrailerLf;
    else if (!isTextByte(byte)) this.#fail("invalid character in trailer field");
    return this.#countLine(MAX_FIELD_LINE_SIZE);
  }

  #countLine(limit: number): false {
    if (++this.#line > limit + 1) this.#fail(`chunk line longer than ${limit} bytes`);
    return false;
  }

  #expect(byte: number, wanted: number): void {
    if (byte !== wanted) {
      this.#fail(wanted === LF ? "CR without LF" : "chunk data not followed by CRLF");
    }
  }

  #fail(message: string): never {
    fail(this.#side, 400, `Invalid chunked body: ${message}`);
  }
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** HTAB, SP, VCHAR and obs-text: what may stand in a field line or chunk extension. */
function isTextByte(byte: number): boolean {
  return byte === 0x09 || (byte >= 0x20 && byte !== 0x7f);
}

// --- authentication, our responses, first-byte dispatch ---------------------------------------

/**
 * The credentials of a `Proxy-Authorization: Basic …` field (RFC 7617): scheme case-insensitive,
 * base64 padding optional, UTF-8, user and password split at the first ':'. `undefined` when the
 * field is missing, repeated, of another scheme or malformed (answer 407).
 */
export function basicCredentials(
  head: RequestHead,
): { user: string; password: string } | undefined {
  const values = fieldValues(head, "proxy-authorization");
  if (values.length !== 1) return undefined;
  const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([A-Za-z0-9+/]+)(={0,2})$/.exec(values[0]!);
  if (!match || match[1]!.toLowerCase() !== "basic") return undefined;
  const encoded = match[2]!;
  const padding = match[3]!.length;
  if (encoded.length % 4 === 1 || (padding > 0 && (encoded.length + padding) % 4 !== 0)) {
    return undefined;
  }
  let text: string;
  try {
    const binary = atob(encoded.padEnd(Math.ceil(encoded.length / 4) * 4, "="));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined; // Not base64 or not UTF-8: the same answer as wrong credentials.
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/**
 * A complete error response of our own: status line, `Content-Type`, `Content-Length`,
 * `Connection: close` and a one-line text body (none when answering `HEAD`). A 407 carries the
 * challenge `Proxy-Authenticate: Basic realm="ssdeno", charset="UTF-8"` (RFC 7617; `realm`
 * defaults to "ssdeno"). The body names the status only, never what the request contained.
 */
export function errorResponse(
  status: number,
  options: { realm?: string; method?: string } = {},
): Uint8Array {
  const reason = REASONS[status] ?? "Error";
  const body = `${status} ${reason}\n`;
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  if (status === 407) {
    const realm = (options.realm ?? "ssdeno").replace(/["\\]/g, "\\$&");
    lines.push(`Proxy-Authenticate: Basic realm="${realm}", charset="UTF-8"`);
  }
  lines.push(
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${body.length}`,
    "Connection: close",
  );
  const head = lines.join("\r\n") + "\r\n\r\n";
  return latin1Bytes(options.method === "HEAD" ? head : head + body);
}

/** The answer to a CONNECT that reached its target; no framing fields (RFC 9110 §9.3.6). */
export function connectEstablished(): Uint8Array {
  return latin1Bytes("HTTP/1.1 200 Connection established\r\n\r\n");
}

/** First letters of GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE, either case. */
const HTTP_FIRST_BYTES = new Set(Array.from("GgHhPpDdCcOoTt", (c) => c.charCodeAt(0)));

/** Whether a connection starting with `byte` may be an HTTP/1 request (NOTES-2 §17.10). */
export function isHttpFirstByte(byte: number): boolean {
  return HTTP_FIRST_BYTES.has(byte);
}

/** The inbound a mixed port hands a connection to, by its first byte; `undefined`: close it. */
export function detectInbound(firstByte: number): "socks4" | "socks5" | "http" | undefined {
  if (firstByte === 0x04) return "socks4";
  if (firstByte === 0x05) return "socks5";
  return isHttpFirstByte(firstByte) ? "http" : undefined;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

/** Our strings come from `latin1` or are ASCII, so every code unit fits a byte. */
function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) {
      throw new RangeError(`Invalid header text: U+${code.toString(16)} is not Latin-1`);
    }
    out[i] = code;
  }
  return out;
}
