/**
 * Targets for the plaintext parsers an application or a probe reaches first: the address
 * header, SOCKS5/4 handshakes, the SOCKS5 UDP header, HTTP proxy heads and chunked bodies, and
 * the FET self-test. Each call goes as far as the inbound would with the same bytes.
 * @module
 */
import { decodeAddress, encodeAddress } from "../protocol/address.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { describeFet, fetCheck } from "../protocol/fet.ts";
import {
  basicCredentials,
  ChunkedScanner,
  forwardRequestHead,
  forwardResponseHead,
  HttpError,
  parseRequestHead,
  parseResponseHead,
  proxyRequestTarget,
  requestBodyFraming,
  responseBodyFraming,
  wantsKeepAlive,
} from "../protocol/http_proxy.ts";
import { parseSocks4Request } from "../protocol/socks4.ts";
import { parseGreeting, parseRequest } from "../protocol/socks5.ts";
import { chooseMethod, credentialsMatch, parseUserPassRequest } from "../protocol/socks5_auth.ts";
import { decodeSocksUdpHeader, encodeSocksUdpHeader } from "../protocol/udp_packet.ts";
import { driveChunked } from "./_drive.ts";
import { ADDRESSES, bytesOf, join, PAYLOADS, u16, UTF8_EDGES } from "./_fixtures.ts";
import { hashBytes } from "./prng.ts";
import { type FuzzTarget, invariant } from "./target.ts";

const USERS = new Map([["alice", "secret"], ["bob", ""]]);

/** `length` of a decoded message must lie inside the input it came from. */
function checkLength(length: number, available: number, what: string): void {
  invariant(
    Number.isInteger(length) && length >= 1 && length <= available,
    `${what} claims ${length} bytes of a ${available}-byte input`,
  );
}

const address: FuzzTarget = {
  name: "address",
  parser: "decodeAddress()",
  typed: [ProtocolError],
  seeds: () => ADDRESSES.flatMap((a) => [encodeAddress(a), join(encodeAddress(a), PAYLOADS[1]!)]),
  dictionary: ["\x01", "\x03", "\x04", "\xff", "::", ".", ...UTF8_EDGES],
  maxLength: 512,
  run(input) {
    const decoded = decodeAddress(input);
    if (decoded) checkLength(decoded.length, input.length, "decodeAddress()");
    return decoded;
  },
};

const socks5: FuzzTarget = {
  name: "socks5",
  parser: "parseGreeting(), chooseMethod(), parseRequest()",
  typed: [ProtocolError],
  seeds: () => {
    const greetings = [Uint8Array.of(5, 1, 0), Uint8Array.of(5, 2, 0, 2), Uint8Array.of(5, 1, 2)];
    return ADDRESSES.flatMap((a, i) =>
      [1, 2, 3].map((command) =>
        join(greetings[i % greetings.length]!, Uint8Array.of(5, command, 0), encodeAddress(a))
      )
    );
  },
  dictionary: ["\x05", "\x01", "\x03", "\x04", "\x00\x02", "\xff", ...UTF8_EDGES],
  maxLength: 1024,
  run(input) {
    const greeting = parseGreeting(input);
    if (!greeting) return undefined;
    checkLength(greeting.length, input.length, "parseGreeting()");
    const method = chooseMethod(greeting.methods, (input[1]! & 1) === 1);
    const rest = input.subarray(greeting.length);
    const request = parseRequest(rest);
    if (request) {
      checkLength(request.length, rest.length, "parseRequest()");
      // The local puts this target into the Shadowsocks header next (outbound/shadowsocks.ts).
      encodeAddress(request.address);
    }
    return { greeting, method, request };
  },
};

const socks5UserPass: FuzzTarget = {
  name: "socks5-userpass",
  parser: "parseUserPassRequest(), credentialsMatch()",
  typed: [ProtocolError],
  seeds: () =>
    [["alice", "secret"], ["bob", ""], ["", ""], ["ü".repeat(60), "p".repeat(255)]].map((
      [user, password],
    ) => {
      const u = bytesOf(user!);
      const p = bytesOf(password!);
      return join(Uint8Array.of(1, u.length), u, Uint8Array.of(p.length), p);
    }),
  dictionary: ["\x01", "\x00", "\xff", "alice", "secret", ...UTF8_EDGES],
  maxLength: 1024,
  run(input) {
    const request = parseUserPassRequest(input);
    if (!request) return undefined;
    checkLength(request.length, input.length, "parseUserPassRequest()");
    return { request, ok: credentialsMatch(USERS, request.user, request.password) };
  },
};

const socks4: FuzzTarget = {
  name: "socks4",
  parser: "parseSocks4Request()",
  typed: [ProtocolError],
  seeds: () => [
    join(Uint8Array.of(4, 1, 0, 80, 1, 2, 3, 4), bytesOf("user\0")),
    join(Uint8Array.of(4, 2, 0xff, 0xff, 10, 0, 0, 1), bytesOf("\0")),
    join(Uint8Array.of(4, 1, 1, 187, 0, 0, 0, 1), bytesOf("\0example.com\0")),
    join(Uint8Array.of(4, 1, 0, 53, 0, 0, 0, 9), bytesOf("me\0[2001:db8::1]\0"), PAYLOADS[1]!),
    join(
      Uint8Array.of(4, 1, 0, 80, 0, 0, 0, 1),
      bytesOf(`${"u".repeat(255)}\0${"h".repeat(255)}\0`),
    ),
  ],
  dictionary: ["\x04", "\x00", "\x00\x00\x00\x01", "\x5a", "[", "]", ":", ...UTF8_EDGES],
  maxLength: 2048,
  run(input) {
    const request = parseSocks4Request(input);
    if (!request) return undefined;
    checkLength(request.length, input.length, "parseSocks4Request()");
    encodeAddress(request.address); // the Shadowsocks header, as after SOCKS5
    return request;
  },
};

const socks5Udp: FuzzTarget = {
  name: "socks5-udp",
  parser: "decodeSocksUdpHeader()",
  typed: [ProtocolError],
  seeds: () =>
    ADDRESSES.flatMap((
      a,
    ) => [encodeSocksUdpHeader(a), join(encodeSocksUdpHeader(a), PAYLOADS[3]!)]),
  dictionary: ["\x00\x00\x00", "\x00\x00\x01", "\x01", "\x03", "\x04", ...UTF8_EDGES],
  maxLength: 1024,
  run(input) {
    const header = decodeSocksUdpHeader(input);
    checkLength(header.length, input.length, "decodeSocksUdpHeader()");
    return header;
  },
};

const REQUEST_HEADS = [
  "GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\n" +
  "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\nAccept: */*\r\n\r\n",
  "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Connection: keep-alive\r\n\r\n",
  "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
  "POST http://user:pw@10.0.0.1:8080/form HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n" +
  "Content-Length: 5\r\nConnection: close, x-drop\r\nX-Drop: 1\r\n\r\nhello",
  "PUT http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
  "5\r\nhello\r\n0\r\n\r\n",
  "GET http://example.com HTTP/1.0\n\n",
  "\r\nOPTIONS http://example.com HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0, 0\r\n\r\n",
  "HEAD http://[::1]/ HTTP/1.1\r\nHost: [::1]\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n",
];

const httpRequest: FuzzTarget = {
  name: "http-request",
  parser: "parseRequestHead(), proxyRequestTarget(), requestBodyFraming(), forwardRequestHead()",
  typed: [HttpError],
  seeds: () => REQUEST_HEADS.map(bytesOf),
  dictionary: [
    "\r\n",
    "\n",
    ": ",
    " ",
    "\t",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "CONNECT ",
    "GET ",
    "http://",
    "https://",
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "chunked",
    "Connection",
    "Proxy-Authorization",
    "Basic ",
    "[",
    "]",
    "@",
    "#",
    "?",
    "*",
    ":65536",
  ],
  maxLength: 40_000,
  run(input) {
    const head = parseRequestHead(input);
    if (!head) return undefined;
    checkLength(head.length, input.length, "parseRequestHead()");
    const target = proxyRequestTarget(head);
    encodeAddress(target.address); // the Shadowsocks header, as after SOCKS5
    const framing = requestBodyFraming(head);
    const credentials = basicCredentials(head);
    const keepAlive = wantsKeepAlive(head);
    const forwarded = target.kind === "forward"
      ? forwardRequestHead(head, target, { keepAlive })
      : undefined;
    return { head, target, framing, credentials, forwarded };
  },
};

const RESPONSE_HEADS = [
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
  "HTTP/1.1 204 No Content\r\n\r\n",
  "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n",
  "HTTP/1.1 100 Continue\r\n\r\n",
  "HTTP/1.0 200\r\nServer: x\r\n\r\n",
  'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n\r\n',
];

const httpResponse: FuzzTarget = {
  name: "http-response",
  parser: "parseResponseHead(), responseBodyFraming(), forwardResponseHead()",
  typed: [HttpError],
  seeds: () => RESPONSE_HEADS.map(bytesOf),
  dictionary: [
    "\r\n",
    ": ",
    " ",
    "HTTP/1.1 ",
    "200",
    "Content-Length",
    "Transfer-Encoding",
    "chunked",
  ],
  maxLength: 40_000,
  run(input) {
    const head = parseResponseHead(input);
    if (!head) return undefined;
    checkLength(head.length, input.length, "parseResponseHead()");
    const method = ["GET", "HEAD", "POST"][hashBytes(input) % 3]!;
    const framing = responseBodyFraming(method, head);
    return { head, framing, forwarded: forwardResponseHead(head, (input.length & 1) === 0) };
  },
};

const CHUNKED_BODIES = [
  "5\r\nhello\r\n0\r\n\r\n",
  "3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nNEXT",
  "0\r\n\r\n",
  "A \t;ext\r\n0123456789\r\n0;last\r\nA: 1\r\nB: 2\r\n\r\n",
];

const httpChunked: FuzzTarget = {
  name: "http-chunked",
  parser: "ChunkedScanner.feed()",
  typed: [HttpError],
  seeds: () => CHUNKED_BODIES.map(bytesOf),
  dictionary: ["\r\n", ";", "0", "f", "FFFFFFFFFFFFFFFF", "\r\n\r\n", ": "],
  maxLength: 8192,
  run(input) {
    const side = (hashBytes(input) & 1) === 0 ? "request" : "response";
    return driveChunked(new ChunkedScanner({ side }), input);
  },
};

const fet: FuzzTarget = {
  name: "fet",
  parser: "fetCheck(), describeFet()",
  typed: [],
  seeds: () => [
    ...PAYLOADS.filter((payload) => payload.length > 0),
    join(Uint8Array.of(0x16, 0x03, 0x01), u16(512), new Uint8Array(16).fill(0xaa)),
    bytesOf("POST /x HTTP/1.1\r\n"),
  ],
  maxLength: 2048,
  run(input) {
    const result = fetCheck(input);
    return { result, text: describeFet(result) };
  },
};

/** The wire targets, in report order. */
export const WIRE_TARGETS: readonly FuzzTarget[] = [
  address,
  socks5,
  socks5UserPass,
  socks4,
  socks5Udp,
  httpRequest,
  httpResponse,
  httpChunked,
  fet,
];
