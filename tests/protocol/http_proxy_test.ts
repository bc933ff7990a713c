import type { Address } from "../../protocol/address.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import {
  basicCredentials,
  ChunkedScanner,
  connectEstablished,
  detectInbound,
  errorResponse,
  forwardRequestHead,
  forwardResponseHead,
  HttpError,
  isHttpFirstByte,
  MAX_FIELD_COUNT,
  MAX_HEAD_SIZE,
  parseRequestHead,
  parseResponseHead,
  proxyRequestTarget,
  requestBodyFraming,
  type RequestHead,
  responseBodyFraming,
  type ResponseHead,
  wantsKeepAlive,
} from "../../protocol/http_proxy.ts";
import { assertEquals, assertOk, assertThrows } from "../_assert.ts";
import { utf8 } from "../_vectors.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function request(head: string): RequestHead {
  const parsed = parseRequestHead(utf8(head));
  assertOk(parsed, `not a complete head: ${JSON.stringify(head)}`);
  return parsed;
}

function response(head: string): ResponseHead {
  const parsed = parseResponseHead(utf8(head));
  assertOk(parsed, `not a complete head: ${JSON.stringify(head)}`);
  return parsed;
}

/** Runs `fn` and returns the `HttpError` it throws. */
function httpError(fn: () => unknown): HttpError {
  const error = assertThrows(fn);
  assertOk(error instanceof HttpError, `expected HttpError, got ${error}`);
  assertOk(error instanceof ProtocolError);
  return error;
}

const GET = "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\n" +
  "Host: www.example.org\r\n" +
  "User-Agent: curl/8.5.0\r\n" +
  "x-Picky-CASE: Kept As Sent\r\n" +
  "\r\n";

// --- request heads --------------------------------------------------------------------------

Deno.test("parseRequestHead() returns need-more on every strict prefix, however it is split", () => {
  const bytes = utf8(GET + "POST http://next/ HTTP/1.1\r\n");
  const expected = parseRequestHead(bytes);
  assertEquals(expected, {
    method: "GET",
    target: "http://www.example.org/pub/WWW/TheProject.html",
    version: "HTTP/1.1",
    fields: [
      { name: "Host", value: "www.example.org" },
      { name: "User-Agent", value: "curl/8.5.0" },
      { name: "x-Picky-CASE", value: "Kept As Sent" },
    ],
    length: GET.length,
  });
  for (let n = 0; n < GET.length; n++) {
    assertEquals(parseRequestHead(bytes.subarray(0, n)), undefined, `prefix ${n}`);
  }
  // As BufferedConn sees it: the bytes arrive in two reads split at every position.
  for (let split = 1; split < bytes.length; split++) {
    const buffer = new Uint8Array(bytes.length);
    buffer.set(bytes.subarray(0, split));
    let parsed = parseRequestHead(buffer.subarray(0, split));
    if (!parsed) {
      buffer.set(bytes.subarray(split), split);
      parsed = parseRequestHead(buffer);
    }
    assertEquals(parsed, expected, `split at ${split}`);
  }
});

Deno.test("parseRequestHead() tolerates bare LF, leading empty lines and trims OWS", () => {
  const bytes = "\r\n\nCONNECT example.com:443 HTTP/1.1\nHost:example.com:443 \t\r\n\n";
  const head = request(bytes + "tunnel data");
  assertEquals(head.method, "CONNECT");
  assertEquals(head.fields, [{ name: "Host", value: "example.com:443" }]);
  assertEquals(head.length, bytes.length);
  // obs-text (Latin-1 bytes) survives unchanged.
  const latin = Uint8Array.of(
    ...utf8("GET http://a/ HTTP/1.0\r\nX: "),
    0xe9,
    0x80,
    ...utf8("\r\n\r\n"),
  );
  assertEquals(parseRequestHead(latin)?.fields[0]?.value, "\u00e9\u0080");
});

Deno.test("parseRequestHead() answers malformed heads with 400 or 505", async (t) => {
  const cases: [string, string, number][] = [
    ["whitespace before the colon", "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n", 400],
    ["tab before the colon", "GET http://a/ HTTP/1.1\r\nHost\t: a\r\n\r\n", 400],
    ["obs-fold", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400],
    ["whitespace after the request line", "GET http://a/ HTTP/1.1\r\n Host: a\r\n\r\n", 400],
    ["no colon", "GET http://a/ HTTP/1.1\r\nHost a\r\n\r\n", 400],
    ["empty field name", "GET http://a/ HTTP/1.1\r\n: a\r\n\r\n", 400],
    ["bad field name", "GET http://a/ HTTP/1.1\r\nHo(st: a\r\n\r\n", 400],
    ["control character in a value", "GET http://a/ HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400],
    ["bare CR in a value", "GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400],
    ["bare CR ending a line", "GET http://a/ HTTP/1.1\r\nX: a\r\r\n\r\n", 400],
    ["two spaces", "GET  http://a/ HTTP/1.1\r\n\r\n", 400],
    ["space in the target", "GET http://a/b c HTTP/1.1\r\n\r\n", 400],
    ["no version", "GET http://a/\r\n\r\n", 400],
    ["lower-case version", "GET http://a/ http/1.1\r\n\r\n", 400],
    ["bad method", "G@T http://a/ HTTP/1.1\r\n\r\n", 400],
    ["HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
    ["HTTP/0.9 style", "GET /\r\n\r\n", 400],
  ];
  for (const [name, head, status] of cases) {
    await t.step(name, () => {
      const error = httpError(() => parseRequestHead(utf8(head)));
      assertEquals(error.status, status);
      assertEquals(error.code, "ERR_CLIENT_PROTOCOL");
    });
  }
});

Deno.test("parseRequestHead() refuses heads over 64 KiB with 431 and long lines with 414/431", () => {
  const start = "GET http://a/ HTTP/1.1\r\nHost: a\r\n";
  /** A complete head of exactly `size` bytes: field lines of up to 10000 bytes, then CRLF. */
  const headOfSize = (size: number) => {
    let head = start;
    for (let left = size - start.length - 2, i = 0; left > 0; i++) {
      let line = Math.min(10_000, left);
      if (left - line > 0 && left - line < 16) line -= 16;
      const name = `X-${i}: `;
      head += name + "v".repeat(line - name.length - 2) + "\r\n";
      left -= line;
    }
    return head + "\r\n";
  };
  // Exactly MAX_HEAD_SIZE bytes, the empty line included, is accepted.
  const exact = headOfSize(MAX_HEAD_SIZE);
  assertEquals(exact.length, MAX_HEAD_SIZE);
  assertEquals(parseRequestHead(utf8(exact))?.length, MAX_HEAD_SIZE);
  // One byte more is refused, whether its end has arrived or not.
  const over = utf8(headOfSize(MAX_HEAD_SIZE + 1));
  assertEquals(httpError(() => parseRequestHead(over)).status, 431);
  assertEquals(httpError(() => parseRequestHead(over.subarray(0, MAX_HEAD_SIZE))).status, 431);
  assertEquals(parseRequestHead(over.subarray(0, MAX_HEAD_SIZE - 1)), undefined);
  const huge = utf8(headOfSize(4 * MAX_HEAD_SIZE));
  assertEquals(httpError(() => parseRequestHead(huge)).status, 431);

  const longTarget = "GET http://a/" + "a".repeat(16 * 1024) + " HTTP/1.1";
  assertEquals(httpError(() => parseRequestHead(utf8(longTarget + "\r\n\r\n"))).status, 414);
  assertEquals(httpError(() => parseRequestHead(utf8(longTarget))).status, 414);
  const longField = start + "Cookie: " + "c".repeat(16 * 1024);
  assertEquals(httpError(() => parseRequestHead(utf8(longField + "\r\n\r\n"))).status, 431);
  assertEquals(httpError(() => parseRequestHead(utf8(longField))).status, 431);

  const fields = (n: number) =>
    start + Array.from({ length: n - 1 }, (_, i) => `X-${i}: y\r\n`).join("") + "\r\n";
  assertEquals(parseRequestHead(utf8(fields(MAX_FIELD_COUNT)))?.fields.length, MAX_FIELD_COUNT);
  assertEquals(httpError(() => parseRequestHead(utf8(fields(MAX_FIELD_COUNT + 1)))).status, 431);
});

// --- request targets -----------------------------------------------------------------------

Deno.test("proxyRequestTarget() reads CONNECT authority-form with a mandatory port", async (t) => {
  const ok: [string, Address][] = [
    ["example.com:443", { type: "domain", host: "example.com", port: 443 }],
    ["93.184.216.34:8443", { type: "ipv4", host: "93.184.216.34", port: 8443 }],
    ["[2001:DB8:0:0::1]:443", { type: "ipv6", host: "2001:db8::1", port: 443 }],
    ["[::ffff:1.2.3.4]:1", { type: "ipv6", host: "::ffff:102:304", port: 1 }],
  ];
  for (const [target, address] of ok) {
    await t.step(target, () => {
      const head = request(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      assertEquals(proxyRequestTarget(head), { kind: "connect", address });
    });
  }
  const bad = [
    "example.com",
    "example.com:",
    "example.com:0",
    "example.com:65536",
    "example.com:https",
    "2001:db8::1:443",
    "[2001:db8::1]",
    "[2001:db8::1]443",
    "[example.com]:443",
    "[2001:db8::1:443",
    "user@example.com:443",
    ":443",
    "http://example.com:443",
  ];
  for (const target of bad) {
    await t.step(`${target} is refused`, () => {
      const head = request(`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const error = httpError(() => proxyRequestTarget(head));
      assertEquals(error.status, 400);
      assertEquals(error.code, "ERR_READ_ADDRESS");
    });
  }
});

Deno.test("proxyRequestTarget() turns absolute-form http:// into origin-form", async (t) => {
  const cases: [string, string, Address, string, string][] = [
    [
      "GET",
      "http://www.example.org/pub/x.html",
      {
        type: "domain",
        host: "www.example.org",
        port: 80,
      },
      "/pub/x.html",
      "www.example.org",
    ],
    [
      "GET",
      "HTTP://Example.ORG:8080?q=1",
      {
        type: "domain",
        host: "Example.ORG",
        port: 8080,
      },
      "/?q=1",
      "Example.ORG:8080",
    ],
    [
      "POST",
      "http://[2001:db8::1]:8080/x",
      {
        type: "ipv6",
        host: "2001:db8::1",
        port: 8080,
      },
      "/x",
      "[2001:db8::1]:8080",
    ],
    ["GET", "http://[::1]/", { type: "ipv6", host: "::1", port: 80 }, "/", "[::1]"],
    ["GET", "http://10.0.0.1:/", { type: "ipv4", host: "10.0.0.1", port: 80 }, "/", "10.0.0.1"],
    [
      "OPTIONS",
      "http://www.example.org:8001",
      {
        type: "domain",
        host: "www.example.org",
        port: 8001,
      },
      "*",
      "www.example.org:8001",
    ],
    [
      "OPTIONS",
      "http://example.org/",
      {
        type: "domain",
        host: "example.org",
        port: 80,
      },
      "/",
      "example.org",
    ],
  ];
  for (const [method, target, address, originForm, host] of cases) {
    await t.step(`${method} ${target}`, () => {
      const head = request(`${method} ${target} HTTP/1.1\r\nHost: elsewhere\r\n\r\n`);
      assertEquals(proxyRequestTarget(head), { kind: "forward", address, originForm, host });
    });
  }
  await t.step("userinfo is dropped", () => {
    const head = request("GET http://user:pw@example.org:80/a?b HTTP/1.0\r\n\r\n");
    assertEquals(proxyRequestTarget(head), {
      kind: "forward",
      address: { type: "domain", host: "example.org", port: 80 },
      originForm: "/a?b",
      host: "example.org",
    });
  });
});

Deno.test("proxyRequestTarget() answers 400 to targets a forward proxy cannot serve", async (t) => {
  const cases: [string, string][] = [
    ["origin-form", "GET /where?q=now HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["https in absolute-form", "GET https://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["another scheme", "GET ftp://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["no scheme", "GET example.org:80 HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["fragment", "GET http://example.org/#top HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["empty host", "GET http:///x HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["percent in host", "GET http://ex%61mple.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n"],
    ["IPv6 without brackets", "GET http://::1/ HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["HTTP/1.1 without Host", "GET http://example.org/ HTTP/1.1\r\n\r\n"],
    ["CONNECT without Host", "CONNECT example.org:443 HTTP/1.1\r\n\r\n"],
    ["two Host fields", "GET http://a/ HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"],
  ];
  for (const [name, head] of cases) {
    await t.step(name, () => {
      assertEquals(httpError(() => proxyRequestTarget(request(head))).status, 400);
    });
  }
});

// --- framing --------------------------------------------------------------------------------

Deno.test("requestBodyFraming() follows RFC 9112 §6.3 and refuses smuggling shapes", async (t) => {
  const framing = (fields: string, version = "HTTP/1.1") =>
    requestBodyFraming(request(`POST http://a/ ${version}\r\nHost: a\r\n${fields}\r\n`));
  assertEquals(framing(""), { kind: "none" });
  assertEquals(framing("Content-Length: 0\r\n"), { kind: "length", length: 0 });
  assertEquals(framing("content-length: 42\r\n"), { kind: "length", length: 42 });
  assertEquals(framing("Content-Length: 5, 5\r\nContent-Length: 5\r\n"), {
    kind: "length",
    length: 5,
  });
  assertEquals(framing("Transfer-Encoding: chunked\r\n"), { kind: "chunked" });
  assertEquals(framing("Transfer-Encoding: gzip, Chunked\r\n"), { kind: "chunked" });
  assertEquals(framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), {
    kind: "chunked",
  });
  const refused = [
    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "Content-Length: 0\r\nTransfer-Encoding: identity\r\n",
    "Transfer-Encoding: chunked, gzip\r\n",
    "Transfer-Encoding: identity\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: xchunked\r\n",
    "Transfer-Encoding: ,\r\n",
    "Content-Length: 5, 6\r\n",
    "Content-Length: 5\r\nContent-Length: 6\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: +5\r\n",
    "Content-Length: 0x10\r\n",
    "Content-Length: 1e3\r\n",
    "Content-Length:\r\n",
    "Content-Length: 9999999999999999\r\n",
  ];
  for (const fields of refused) {
    await t.step(JSON.stringify(fields), () => {
      assertEquals(httpError(() => framing(fields)).status, 400);
    });
  }
  await t.step("Transfer-Encoding in HTTP/1.0", () => {
    assertEquals(
      httpError(() => framing("Transfer-Encoding: chunked\r\n", "HTTP/1.0")).status,
      400,
    );
  });
});

// --- forwarding -----------------------------------------------------------------------------

Deno.test("forwardRequestHead() rewrites the target and Host and drops hop-by-hop fields", () => {
  const head = request(
    "POST http://user:pw@Example.org:80/submit?x=1 HTTP/1.1\r\n" +
      "User-Agent: test\r\n" +
      "host: attacker.example\r\n" +
      "Connection: keep-alive, X-Secret, Content-Length\r\n" +
      "Proxy-Connection: keep-alive, x-other\r\n" +
      "X-Secret: 1\r\n" +
      "x-other: 2\r\n" +
      "Keep-Alive: timeout=5\r\n" +
      "TE: trailers\r\n" +
      "Upgrade: websocket\r\n" +
      "Proxy-Authorization: Basic dTpw\r\n" +
      "Proxy-Authenticate: Basic\r\n" +
      "Content-Length: 3\r\n" +
      "X-Keep-CASE: yes\r\n" +
      "\r\n",
  );
  const target = proxyRequestTarget(head);
  assertOk(target.kind === "forward");
  assertEquals(requestBodyFraming(head), { kind: "length", length: 3 });
  assertEquals(
    text(forwardRequestHead(head, target)),
    "POST /submit?x=1 HTTP/1.1\r\n" +
      "host: Example.org\r\n" +
      "User-Agent: test\r\n" +
      "Content-Length: 3\r\n" +
      "X-Keep-CASE: yes\r\n" +
      "Connection: close\r\n" +
      "\r\n",
  );
  assertOk(
    text(forwardRequestHead(head, target, { keepAlive: true })).endsWith(
      "Connection: keep-alive\r\n\r\n",
    ),
  );
});

Deno.test("forwardRequestHead() keeps a chunked body chunked, adds Host and keeps the port", () => {
  const head = request(
    "PUT http://[2001:db8::1]:8080/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
  );
  const target = proxyRequestTarget(head);
  assertOk(target.kind === "forward");
  assertEquals(
    text(forwardRequestHead(head, target)),
    "PUT /x HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\nTransfer-Encoding: chunked\r\n" +
      "Trailer: X-Sum\r\nConnection: close\r\n\r\n",
  );
});

Deno.test("wantsKeepAlive() persists HTTP/1.1 unless close, and never HTTP/1.0", () => {
  const keep = (version: string, fields = "") =>
    wantsKeepAlive(request(`GET http://a/ ${version}\r\nHost: a\r\n${fields}\r\n`));
  assertEquals(keep("HTTP/1.1"), true);
  assertEquals(keep("HTTP/1.1", "Connection: keep-alive\r\n"), true);
  assertEquals(keep("HTTP/1.1", "Connection: Upgrade, CLOSE\r\n"), false);
  assertEquals(keep("HTTP/1.1", "Proxy-Connection: close\r\n"), false);
  assertEquals(keep("HTTP/1.0"), false);
  assertEquals(keep("HTTP/1.0", "Connection: keep-alive\r\n"), false);
  assertEquals(keep("HTTP/1.0", "Proxy-Connection: keep-alive\r\n"), false);
});

// --- responses ------------------------------------------------------------------------------

Deno.test("parseResponseHead() returns need-more on every strict prefix", () => {
  const head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Case: A\r\n\r\n";
  const bytes = utf8(head + "hello");
  for (let n = 0; n < head.length; n++) {
    assertEquals(parseResponseHead(bytes.subarray(0, n)), undefined, `prefix ${n}`);
  }
  assertEquals(parseResponseHead(bytes), {
    version: "HTTP/1.1",
    status: 200,
    reason: "OK",
    fields: [{ name: "Content-Length", value: "5" }, { name: "X-Case", value: "A" }],
    length: head.length,
  });
  assertEquals(response("HTTP/1.0 204\r\n\r\n").reason, "");
  assertEquals(response("HTTP/1.1 404 Not  Found \r\n\r\n").reason, "Not  Found ");
});

Deno.test("parseResponseHead() maps every upstream fault to 502", async (t) => {
  const cases = [
    "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
    "HTTP/2 200 OK\r\n\r\n",
    "HTTP/1.1 20 OK\r\n\r\n",
    "HTTP/1.1 099 OK\r\n\r\n",
    "ICY 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\n" + "X: " + "x".repeat(MAX_HEAD_SIZE),
  ];
  for (const head of cases) {
    await t.step(JSON.stringify(head.slice(0, 40)), () => {
      const error = httpError(() => parseResponseHead(utf8(head)));
      assertEquals(error.status, 502);
      assertEquals(error.code, "ERR_RELAY_TARGET");
    });
  }
});

Deno.test("responseBodyFraming() follows RFC 9112 §6.3", () => {
  const framing = (method: string, head: string) => responseBodyFraming(method, response(head));
  assertEquals(framing("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), { kind: "none" });
  assertEquals(framing("GET", "HTTP/1.1 100 Continue\r\n\r\n"), { kind: "none" });
  assertEquals(framing("GET", "HTTP/1.1 204 No Content\r\n\r\n"), { kind: "none" });
  assertEquals(framing("GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), {
    kind: "none",
  });
  assertEquals(framing("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), {
    kind: "chunked",
  });
  assertEquals(
    framing("GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    { kind: "chunked" },
  );
  assertEquals(framing("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), {
    kind: "close",
  });
  assertEquals(framing("GET", "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"), {
    kind: "length",
    length: 7,
  });
  assertEquals(framing("GET", "HTTP/1.0 200 OK\r\n\r\n"), { kind: "close" });
  for (
    const head of [
      "HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
  ) {
    assertEquals(httpError(() => framing("GET", head)).status, 502);
  }
});

Deno.test("forwardResponseHead() strips hop-by-hop fields and sets our Connection", () => {
  const head = response(
    "HTTP/1.1 200 OK\r\nconnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n" +
      'Proxy-Authenticate: Basic realm="up"\r\nContent-Length: 10\r\n' +
      "Transfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n\r\n",
  );
  assertEquals(
    text(forwardResponseHead(head, true)),
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\n" +
      "Connection: keep-alive\r\n\r\n",
  );
  assertEquals(
    text(forwardResponseHead(response("HTTP/1.0 200 \r\nContent-Length: 1\r\n\r\n"), false)),
    "HTTP/1.0 200 \r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
  );
  assertEquals(
    text(forwardResponseHead(response("HTTP/1.1 100 Continue\r\n\r\n"), false)),
    "HTTP/1.1 100 Continue\r\n\r\n",
  );
});

// --- chunked bodies -------------------------------------------------------------------------

/** The chunked example shape of RFC 9112 §7.1 with an extension and a trailer. */
const CHUNKED = '4\r\nWiki\r\n5;name="v a"\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n' +
  "0\r\nX-Sum: 1\r\n\r\n";

Deno.test("ChunkedScanner finds the end of a body split at every offset", () => {
  const bytes = utf8(CHUNKED + "GET http://next/ HTTP/1.1\r\n");
  for (let split = 0; split <= bytes.length; split++) {
    const scanner = new ChunkedScanner();
    let consumed = scanner.feed(bytes.subarray(0, split));
    if (consumed < 0) {
      assertOk(!scanner.done);
      const rest = scanner.feed(bytes.subarray(split));
      consumed = split + rest;
    }
    assertEquals(consumed, CHUNKED.length, `split at ${split}`);
    assertOk(scanner.done);
    assertEquals(scanner.feed(utf8("more")), 0);
  }
  const oneByOne = new ChunkedScanner();
  for (let i = 0; i < CHUNKED.length; i++) {
    const n = oneByOne.feed(bytes.subarray(i, i + 1));
    assertEquals(n, i === CHUNKED.length - 1 ? 1 : -1, `byte ${i}`);
  }
  assertEquals(new ChunkedScanner().feed(utf8("0\r\n\r\n")), 5);
  assertEquals(new ChunkedScanner().feed(utf8("000 ; a=b\r\n\r\n")), 13);
});

Deno.test("ChunkedScanner refuses malformed framing with 400, or 502 upstream", async (t) => {
  const cases = [
    "4\nWiki\r\n0\r\n\r\n",
    "4\r\nWiki\n0\r\n\r\n",
    "4\r\nWikip\r\n0\r\n\r\n",
    "x\r\n",
    "\r\n",
    "-1\r\n",
    "4x\r\n",
    "4 4\r\n",
    "0\r\nX: a\n\r\n",
    "0\r\n\n",
    "4;a\x00b\r\n",
    "10000000000000\r\n",
    "1;" + "e".repeat(5000) + "\r\n",
    "0\r\n" + "X: y\r\n".repeat(MAX_FIELD_COUNT + 1) + "\r\n",
    "0\r\nX: " + "y".repeat(20_000),
  ];
  for (const body of cases) {
    await t.step(JSON.stringify(body.slice(0, 30)), () => {
      assertEquals(httpError(() => new ChunkedScanner().feed(utf8(body))).status, 400);
      const upstream = httpError(() => new ChunkedScanner({ side: "response" }).feed(utf8(body)));
      assertEquals(upstream.status, 502);
      assertEquals(upstream.code, "ERR_RELAY_TARGET");
    });
  }
});

// --- authentication and our responses --------------------------------------------------------

Deno.test("basicCredentials() decodes RFC 7617 credentials", () => {
  const credentials = (value: string) =>
    basicCredentials(
      request(`GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: ${value}\r\n\r\n`),
    );
  // RFC 7617 §2 and §2.1 examples.
  assertEquals(credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), {
    user: "Aladdin",
    password: "open sesame",
  });
  assertEquals(credentials("basic dGVzdDoxMjPCow=="), { user: "test", password: "123£" });
  assertEquals(credentials("BASIC  dGVzdDoxMjPCow"), { user: "test", password: "123£" });
  assertEquals(credentials(`Basic ${btoa("u:p:q")}`), { user: "u", password: "p:q" });
  assertEquals(credentials(`Basic ${btoa(":")}`), { user: "", password: "" });
  for (
    const bad of [
      "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
      "Basic",
      "BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ==",
      `Basic ${btoa("no colon")}`,
      "Basic QWxh ZGRp",
      "Basic QWxhZ",
      "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=",
      "Basic dGVzdDpw/w==",
    ]
  ) {
    assertEquals(credentials(bad), undefined, bad);
  }
  const twice = request(
    "GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic dTpw\r\n" +
      "Proxy-Authorization: Basic dTpw\r\n\r\n",
  );
  assertEquals(basicCredentials(twice), undefined);
  assertEquals(basicCredentials(request("GET http://a/ HTTP/1.0\r\n\r\n")), undefined);
});

Deno.test("errorResponse() is a complete response that closes, with a challenge for 407", () => {
  const bytes = errorResponse(407);
  const head = parseResponseHead(bytes);
  assertOk(head);
  assertEquals(head.status, 407);
  assertEquals(head.fields, [
    { name: "Proxy-Authenticate", value: 'Basic realm="ssdeno", charset="UTF-8"' },
    { name: "Content-Type", value: "text/plain; charset=utf-8" },
    { name: "Content-Length", value: "34" },
    { name: "Connection", value: "close" },
  ]);
  assertEquals(text(bytes.subarray(head.length)), "407 Proxy Authentication Required\n");
  assertEquals(responseBodyFraming("GET", head), { kind: "length", length: 34 });

  const bad = errorResponse(400, { method: "HEAD" });
  const badHead = parseResponseHead(bad);
  assertEquals(badHead?.length, bad.length);
  assertOk(text(bad).includes("Content-Length: 16\r\n"));
  assertOk(text(errorResponse(407, { realm: 'a"b' })).includes('realm="a\\"b"'));
  assertEquals(parseResponseHead(errorResponse(502))?.reason, "Bad Gateway");
  assertEquals(text(connectEstablished()), "HTTP/1.1 200 Connection established\r\n\r\n");
});

Deno.test("detectInbound() dispatches a mixed port on the first byte", () => {
  const http = Array.from({ length: 256 }, (_, b) => b).filter(isHttpFirstByte);
  assertEquals(String.fromCharCode(...http), "CDGHOPTcdghopt");
  for (
    const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"]
  ) {
    assertEquals(detectInbound(method.charCodeAt(0)), "http");
    assertEquals(detectInbound(method.toLowerCase().charCodeAt(0)), "http");
  }
  assertEquals(detectInbound(0x04), "socks4");
  assertEquals(detectInbound(0x05), "socks5");
  for (const byte of [0x00, 0x01, 0x03, 0x06, 0x16, 0x41, 0xff]) {
    assertEquals(detectInbound(byte), undefined);
  }
});
