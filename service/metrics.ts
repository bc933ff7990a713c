/**
 * Prometheus metrics of the server role, in the text exposition format (0.0.4), with the
 * families and labels outline-ss-server exports (NOTES-2 §19) where ssdeno measures the same
 * thing, so Outline's dashboards and queries work, plus ssdeno's own (`ssdeno_*`).
 *
 * Rendered at scrape time from the services' counters (nothing is kept twice). As Outline does,
 * Outline's counter families carry no `_total` suffix and zero byte series are left out (ours
 * and the `process_*` ones follow Prometheus's convention). Bytes are the
 * plaintext relayed: `dir="p>t"` (to targets) and `dir="p<t"` (from targets); ssdeno does not
 * count ciphertext, so the `c>p`/`c<p` series are absent (Outline's data-limit query sums
 * `c<p|p>t`: here it sees uploads only; use `p>t|p<t`).
 * @module
 */
import type { ResolverStats } from "../relay/resolver.ts";
import { STATUSES } from "../protocol/errors.ts";
import type { RunningService } from "../relay/service.ts";
import type { FleetView } from "./fleet_node.ts";
import type { ProcessSample } from "./process_sample.ts";

/** One server listener as the metrics see it. */
export interface MetricsSource {
  /** The listener's port: the `access_key` of a single-key listener (Outline's key id). */
  readonly port: number;
  /** Users of a multi-user listener (their names are their `access_key`s). */
  readonly users: readonly string[];
  readonly service: RunningService;
}

type Labels = Record<string, string | number>;

/** Builds the exposition text one family at a time. */
class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: "counter" | "gauge", help: string, samples: [Labels, number][]) {
    if (samples.length === 0) return;
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
      this.#lines.push(`${name}${text.length ? `{${text.join(",")}}` : ""} ${value}`);
    }
  }

  /** A family of one unlabelled sample. */
  single(name: string, type: "counter" | "gauge", help: string, value: number) {
    this.family(name, type, help, [[{}, value]]);
  }

  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** The metrics text for `sources` right now. */
export function renderMetrics(
  sources: readonly MetricsSource[],
  version: string,
  dns?: ResolverStats,
  fleet?: FleetView,
  process?: ProcessSample,
): string {
  const out = new Exposition();
  out.family("shadowsocks_build_info", "gauge", "The running version.", [[{ version }, 1]]);
  out.family("shadowsocks_ports", "gauge", "Open listener ports.", [[{}, sources.length]]);
  const keys = sources.reduce((sum, s) => sum + Math.max(1, s.users.length), 0);
  out.family("shadowsocks_keys", "gauge", "Access keys (users) configured.", [[{}, keys]]);

  const bytes: [Labels, number][] = [];
  const add = (proto: string, dir: string, key: string | number, value: number) => {
    if (value > 0) bytes.push([{ proto, dir, access_key: key }, value]);
  };
  for (const { port, users, service } of sources) {
    const { stats, udpStats } = service;
    if (users.length === 0) {
      add("tcp", "p>t", port, stats.bytesUplink);
      add("tcp", "p<t", port, stats.bytesDownlink);
      if (udpStats) {
        add("udp", "p>t", port, udpStats.bytesUplink);
        add("udp", "p<t", port, udpStats.bytesDownlink);
      }
      continue;
    }
    for (const user of users) {
      add("tcp", "p>t", user, stats.users[user]?.bytesUplink ?? 0);
      add("tcp", "p<t", user, stats.users[user]?.bytesDownlink ?? 0);
      add("udp", "p>t", user, udpStats?.users[user]?.bytesUplink ?? 0);
      add("udp", "p<t", user, udpStats?.users[user]?.bytesDownlink ?? 0);
    }
  }
  out.family("shadowsocks_data_bytes", "counter", "Plaintext bytes relayed.", bytes);

  const sum = (pick: (service: RunningService) => number) =>
    sources.reduce((total, source) => total + pick(source.service), 0);
  const closed = STATUSES.map((status): [Labels, number] => [
    { status },
    sum((s) => s.stats.statuses[status]),
  ]).filter(([, n]) => n > 0);
  const ended = closed.reduce((total, [, n]) => total + n, 0);
  const live = sum((s) => s.stats.active);
  out.family("shadowsocks_tcp_connections_opened", "counter", "TCP connections accepted.", [
    [{}, ended + live],
  ]);
  out.family(
    "shadowsocks_tcp_connections_closed",
    "counter",
    "TCP connections ended, by status.",
    closed,
  );
  const udpSources = sources.filter((s) => s.service.udpStats !== undefined);
  if (udpSources.length > 0) {
    const udp = (pick: (stats: NonNullable<RunningService["udpStats"]>) => number) =>
      udpSources.reduce((total, source) => total + pick(source.service.udpStats!), 0);
    out.family("shadowsocks_udp_nat_entries_added", "counter", "UDP associations created.", [
      [{}, udp((u) => u.associationsOpened)],
    ]);
    out.family("shadowsocks_udp_nat_entries_removed", "counter", "UDP associations removed.", [
      [{}, udp((u) => u.associationsOpened - u.associations)],
    ]);
    out.family(
      "shadowsocks_udp_packets_from_client_per_location",
      "counter",
      "Client datagrams, by status.",
      STATUSES.map((status): [Labels, number] => [{ status }, udp((u) => u.statuses[status])])
        .filter(([, n]) => n > 0),
    );
    out.family("ssdeno_udp_associations", "gauge", "UDP associations open now.", [
      [{}, udp((u) => u.associations)],
    ]);
  }
  out.family("ssdeno_sessions_live", "gauge", "TCP sessions in progress.", [[{}, live]]);
  out.family(
    "ssdeno_replay_salts",
    "gauge",
    "Salts the replay memory holds now.",
    [[{}, replaySalts(sources)]],
  );
  out.family(
    "ssdeno_worker_connections_total",
    "counter",
    "TCP connections accepted, by isolate (0: the main one; --workers).",
    perIsolate(sources).map((n, worker): [Labels, number] => [{ worker }, n]),
  );
  out.family("ssdeno_accept_errors_total", "counter", "Accept errors skipped or waited out.", [
    [{ kind: "peer" }, sum((s) => s.stats.acceptErrors.peer)],
    [{ kind: "resource" }, sum((s) => s.stats.acceptErrors.resource)],
  ]);
  if (dns) {
    out.family("ssdeno_dns_queries_total", "counter", "DNS questions asked (or system lookups).", [
      [{}, dns.queries],
    ]);
    out.family("ssdeno_dns_cache_total", "counter", "Target names looked up, by cache result.", [
      [{ result: "hit" }, dns.cacheHits],
      [{ result: "negative_hit" }, dns.negativeHits],
      [{ result: "miss" }, dns.cacheMisses],
    ]);
    out.single("ssdeno_dns_cache_entries", "gauge", "Answers the DNS cache holds.", dns.cacheSize);
    out.family(
      "ssdeno_dns_errors_total",
      "counter",
      "Lookups that failed, by reason.",
      Object.entries(dns.errors).map(([reason, n]): [Labels, number] => [{ reason }, n]),
    );
    const fallbacks = "Truncated answers asked over TCP.";
    out.single("ssdeno_dns_tcp_fallbacks_total", "counter", fallbacks, dns.tcpFallbacks);
  }
  if (fleet) fleetFamilies(out, fleet);
  if (process) processFamilies(out, process);
  return out.toString();
}

/** The process (Prometheus's default `process_*` names), and the isolates accepting. */
function processFamilies(out: Exposition, sample: ProcessSample): void {
  out.single("process_cpu_seconds_total", "counter", "User and system CPU, s.", sample.cpuSeconds);
  out.single("process_resident_memory_bytes", "gauge", "Resident memory.", sample.residentBytes);
  const started = Math.round(sample.startTimeSeconds * 1000) / 1000;
  out.single("process_start_time_seconds", "gauge", "Start time, Unix seconds.", started);
  if (sample.maxFds !== undefined && Number.isFinite(sample.maxFds)) {
    out.single("process_max_fds", "gauge", "Soft limit of open descriptors.", sample.maxFds);
  }
  const isolates = "Isolates started, each accepting on every TCP port (the main one and workers).";
  out.single("ssdeno_isolates", "gauge", isolates, sample.isolates);
}

/** Fleet mode (service/fleet_node.ts): the link to Redis, its checks and the nodes it lists. */
function fleetFamilies(out: Exposition, { stats, nodes }: FleetView): void {
  out.family("ssdeno_fleet_up", "gauge", "1 while this node reaches the fleet's Redis.", [
    [{}, stats.state === "up" ? 1 : 0],
  ]);
  out.family("ssdeno_fleet_reconnects_total", "counter", "Returns of the Redis connection.", [
    [{}, stats.reconnects],
  ]);
  out.family(
    "ssdeno_fleet_salt_checks_total",
    "counter",
    "Salts checked with the fleet after the local replay store, by result.",
    (["fresh", "replay", "unavailable"] as const).map((result) => [
      { result },
      stats.salts[result],
    ]),
  );
  out.family("ssdeno_fleet_flushes_total", "counter", "Byte-count flushes, by result.", [
    [{ result: "ok" }, stats.flushes],
    [{ result: "failed" }, stats.flushFailures],
  ]);
  out.family(
    "ssdeno_fleet_unflushed_bytes",
    "gauge",
    "Bytes counted here that Redis has not acknowledged (lost if the node died now).",
    [[{}, stats.unflushedBytes]],
  );
  out.family("ssdeno_fleet_nodes", "gauge", "Nodes with a live heartbeat (last read).", [
    [{}, nodes.length],
  ]);
  out.family(
    "ssdeno_fleet_node_load",
    "gauge",
    "Live sessions of each node, from its last heartbeat.",
    nodes.map((node): [Labels, number] => [{ node: node.node }, node.load]),
  );
}

/**
 * TCP connections each isolate accepted, over the listeners that run in several
 * (service/workers.ts); empty when none does.
 */
function perIsolate(sources: readonly MetricsSource[]): number[] {
  const totals: number[] = [];
  for (const { service } of sources) {
    const counts = (service as { connectionsPerIsolate?: () => number[] })
      .connectionsPerIsolate?.() ?? [];
    counts.forEach((n, i) => totals[i] = (totals[i] ?? 0) + n);
  }
  return totals;
}

/** Salts in the listeners' replay stores, each store counted once (a process shares one). */
function replaySalts(sources: readonly MetricsSource[]): number {
  const stores = new Set<{ readonly size: number }>();
  for (const { service } of sources) {
    const memory = (service as { replayMemory?: () => readonly { readonly size: number }[] })
      .replayMemory?.() ?? [];
    memory.forEach((store) => stores.add(store));
  }
  return [...stores].reduce((total, store) => total + store.size, 0);
}

/** A started metrics endpoint. */
export interface MetricsServer {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

/** Serves `render()` at `GET /metrics` on `hostname:port`; every other path is a 404. */
export function startMetricsServer(
  hostname: string,
  port: number,
  render: () => string,
): MetricsServer {
  const server = Deno.serve({ hostname, port, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname !== "/metrics" || request.method !== "GET") {
      return new Response("Not found\n", { status: 404 });
    }
    return new Response(render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  });
  return {
    addr: server.addr as Deno.NetAddr,
    close: () => server.shutdown(),
  };
}
