/**
 * Shared test fixtures: a loopback HTTP target with deterministic content, byte helpers, and a
 * `curl` runner that goes through a SOCKS5 proxy.
 *
 * Everything binds 127.0.0.1 on port 0 and owns its resources: close what you start (or use
 * `await using`) so Deno's resource and op sanitizers stay green.
 *
 * ```ts
 * await using http = startHttpFixture();
 * const result = await curlViaSocks(socksPort, http.url("/blob?size=1048576"));
 * // result.code === 0, result.stdout equals deterministicBytes(1048576)
 * ```
 * @module
 */

/** Largest body `/blob` serves, so a typo in a test cannot exhaust memory. */
export const MAX_BLOB_SIZE = 256 * 1024 * 1024;

/** Seed of the `/blob` content; `deterministicBytes(n)` with the default seed matches it. */
export const BLOB_SEED = 0x5eed_cafe;

/**
 * Returns `size` pseudo-random bytes from a xorshift32 generator. The same size and seed always
 * give the same bytes, and a shorter result is a prefix of a longer one.
 */
export function deterministicBytes(size: number, seed: number = BLOB_SEED): Uint8Array {
  const out = new Uint8Array(size);
  let state = (seed >>> 0) || 1;
  let at = 0;
  while (at < size) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    for (let shift = 0; shift < 32 && at < size; shift += 8) out[at++] = (state >>> shift) & 0xff;
  }
  return out;
}

/** Returns `size` bytes from the system CSPRNG (filled in 64 KiB steps, its per-call limit). */
export function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(size, at + 65536)));
  }
  return out;
}

/** Lower-case hex SHA-256 of `data`. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A running HTTP target; see `startHttpFixture`. */
export interface HttpFixture extends AsyncDisposable {
  /** The bound address (127.0.0.1 and an ephemeral port). */
  readonly addr: Deno.NetAddr;
  /** `http://127.0.0.1:PORT` + `path`; pass `host` (e.g. `"localhost"`) to name it otherwise. */
  url(path: string, host?: string): string;
  /** Requests answered so far, by path (without the query). */
  readonly requests: Map<string, number>;
  /** Stops the server and waits until every connection has ended. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts an HTTP server (default on 127.0.0.1, a free port) with two routes:
 *
 * - `GET /blob?size=N` → `deterministicBytes(N)` (0 ≤ N ≤ `MAX_BLOB_SIZE`), as
 *   `application/octet-stream` with a `Content-Length`.
 * - `POST /echo` → the request body, byte for byte.
 *
 * Anything else is a 404; a bad size is a 400.
 */
export function startHttpFixture(hostname = "127.0.0.1", port = 0): HttpFixture {
  const requests = new Map<string, number>();
  const server = Deno.serve(
    { hostname, port, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      requests.set(url.pathname, (requests.get(url.pathname) ?? 0) + 1);
      if (url.pathname === "/blob" && request.method === "GET") {
        const size = Number(url.searchParams.get("size") ?? "0");
        if (!Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_SIZE) {
          return new Response(`Invalid size "${url.searchParams.get("size")}"\n`, {
            status: 400,
          });
        }
        return new Response(deterministicBytes(size) as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": "application/octet-stream" },
        });
      }
      if (url.pathname === "/echo" && request.method === "POST") {
        const body = new Uint8Array(await request.arrayBuffer());
        return new Response(body, { headers: { "content-type": "application/octet-stream" } });
      }
      return new Response("Not found\n", { status: 404 });
    },
  );
  const addr = server.addr as Deno.NetAddr;
  let closing: Promise<void> | undefined;
  const close = () => closing ??= server.shutdown().then(() => server.finished);
  return {
    addr,
    requests,
    url: (path, host = addr.hostname) => `http://${host}:${addr.port}${path}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Options of `curlViaSocks`. */
export interface CurlOptions {
  /** POST the contents of this file (`--data-binary @FILE`). */
  uploadFile?: string;
  /** POST these bytes; written to a temporary file that is removed afterwards. */
  body?: Uint8Array;
  /** `--max-time` in seconds. Default 30. */
  maxTimeSeconds?: number;
  /** More arguments, placed before the URL. */
  extraArgs?: readonly string[];
  /** How to reach the proxy instead of `--socks5-hostname 127.0.0.1:PORT`, e.g. `["-x", url]`. */
  proxyArgs?: readonly string[];
  /** Kills curl when aborted. */
  signal?: AbortSignal;
}

/** How a curl run ended. */
export interface CurlResult {
  /** curl's exit code (0 on success; 22 for HTTP errors with `--fail`, 7/52/56/97 on I/O). */
  code: number;
  /** The response body. */
  stdout: Uint8Array;
  /** curl's diagnostics, for failure messages. */
  stderr: string;
}

/**
 * Runs `curl -sS --fail --max-time 30 --socks5-hostname 127.0.0.1:SOCKS_PORT URL` and collects
 * its output. Host names in `url` are resolved by the proxy, not by curl. Needs `curl` on PATH
 * and `--allow-run` (plus `--allow-write` for `body`).
 */
export async function curlViaSocks(
  socksPort: number,
  url: string,
  options: CurlOptions = {},
): Promise<CurlResult> {
  const args = [
    "-sS",
    "--fail",
    "--max-time",
    String(options.maxTimeSeconds ?? 30),
    ...(options.proxyArgs ?? ["--socks5-hostname", `127.0.0.1:${socksPort}`]),
  ];
  let tempFile: string | undefined;
  try {
    let upload = options.uploadFile;
    if (options.body) {
      tempFile = await Deno.makeTempFile({ prefix: "ssdeno-curl-", suffix: ".bin" });
      await Deno.writeFile(tempFile, options.body);
      upload = tempFile;
    }
    if (upload !== undefined) {
      // An empty Expect header stops curl from waiting for "100 Continue" on large bodies.
      args.push("--data-binary", `@${upload}`, "-H", "Content-Type: application/octet-stream");
      args.push("-H", "Expect:");
    }
    args.push(...(options.extraArgs ?? []), url);
    const commandOptions: Deno.CommandOptions = {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    };
    if (options.signal) commandOptions.signal = options.signal;
    const output = await new Deno.Command("curl", commandOptions).output();
    return {
      code: output.code,
      stdout: output.stdout,
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    if (tempFile !== undefined) await Deno.remove(tempFile);
  }
}

/**
 * Polls `condition` every `intervalMs` (default 20) until it returns true; throws with
 * `message` (or a default) after `timeoutMs` (default 5000). For counters that settle shortly
 * after the client side has finished.
 */
export async function waitUntil(
  condition: () => boolean,
  options: { timeoutMs?: number; intervalMs?: number; message?: () => string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const intervalMs = options.intervalMs ?? 20;
  const attempts = Math.max(1, Math.ceil(timeoutMs / intervalMs));
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  if (condition()) return;
  throw new Error(options.message?.() ?? `Condition not met within ${timeoutMs} ms`);
}
