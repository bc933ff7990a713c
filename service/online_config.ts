/**
 * SIP008 online config for the client roles: fetch the server list from the provider's URL,
 * validate it, and hand it on; then fetch it again every `update_interval`. A failed or invalid
 * refresh keeps the last good list (one warning line). The URL usually holds a secret (a token
 * in its path), and the document holds passwords, so logs name only the URL's origin and the
 * servers' addresses.
 * @module
 */
import { parseConfigText, type Sip008Servers, sip008Servers } from "../config/load.ts";
import type { UpstreamServer } from "../config/types.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";

/** A provider that takes longer than this is failed (the last good list stays). */
const FETCH_TIMEOUT_MS = 15_000;
/** Larger answers are refused: a list of servers is a few KiB, a hostile URL could be endless. */
const MAX_DOCUMENT_BYTES = 1 << 20;

/** How logs name the URL: its origin only (the path and query often hold a token). */
export function describeUrl(url: string): string {
  const parsed = new URL(url);
  return parsed.pathname === "/" && parsed.search === "" ? parsed.origin : `${parsed.origin}/…`;
}

/** Fetches and validates the SIP008 document at `url`; throws with a reason a user can act on. */
export async function fetchSip008(
  url: string,
  signal?: AbortSignal,
  allowInsecure = false,
): Promise<Sip008Servers> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      signal: combined,
      redirect: "follow",
      headers: { accept: "application/json" },
    });
  } catch (error) {
    if (timeout.aborted) throw new Error(`no answer within ${FETCH_TIMEOUT_MS / 1000} s`);
    throw new Error(fetchReason(error));
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const text = await readLimited(response, MAX_DOCUMENT_BYTES);
  return sip008Servers(parseConfigText(text, "the online config"), allowInsecure);
}

/** The body as text, refusing more than `limit` bytes. */
async function readLimited(response: Response, limit: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`the document is larger than ${limit >> 10} KiB`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

/** fetch's errors carry the URL (with its secret) in their text: keep the reason only. */
function fetchReason(error: unknown): string {
  const message = errorMessage(error);
  if (/certificate|UnknownIssuer|tls|ssl/i.test(message)) {
    return "the server's TLS certificate is not trusted";
  }
  if (/refused/i.test(message)) return "connection refused";
  if (/dns|lookup|resolve|name/i.test(message)) return "the host name does not resolve";
  if (/reset/i.test(message)) return "connection reset";
  return "the request failed";
}

/** Says what a fetched list holds, for the log: count, data usage and leftovers. */
export function describeList(list: Sip008Servers): string {
  const usage = list.bytesUsed === undefined ? "" : `, ${formatBytes(list.bytesUsed)} used` +
    (list.bytesRemaining === undefined ? "" : `, ${formatBytes(list.bytesRemaining)} left`);
  const count = `${list.servers.length} server${list.servers.length === 1 ? "" : "s"}`;
  return `${count}${usage}`;
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export interface OnlineRefreshOptions {
  url: string;
  intervalMs: number;
  logger: Logger;
  /** Keep legacy stream-cipher entries (`allow_insecure_ciphers`). */
  allowInsecure?: boolean;
  /** Applies a new list; throwing keeps the last good one. */
  apply: (servers: UpstreamServer[]) => void;
}

/** Fetches the list again every `intervalMs` until `close`. */
export function startOnlineRefresh(options: OnlineRefreshOptions): { close(): Promise<void> } {
  const stop = new AbortController();
  const where = describeUrl(options.url);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let last = "";
  const refresh = async () => {
    try {
      const list = await fetchSip008(options.url, stop.signal, options.allowInsecure);
      list.warnings.forEach((warning) => options.logger.warn(`online config: ${warning}`));
      options.apply(list.servers);
      const summary = describeList(list);
      const log = summary === last ? options.logger.debug : options.logger.info;
      log.call(options.logger, `online config from ${where}: ${summary}`);
      last = summary;
    } catch (error) {
      if (stop.signal.aborted) return;
      options.logger.warn(
        `online config from ${where} not updated (keeping the last good list): ${
          errorMessage(error)
        }`,
      );
    }
  };
  const schedule = () => {
    if (stop.signal.aborted) return;
    timer = setTimeout(() => {
      running = refresh().finally(schedule);
    }, options.intervalMs);
  };
  schedule();
  return {
    async close() {
      stop.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
