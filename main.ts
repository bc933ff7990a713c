/**
 * The `ssdeno` command: parse the arguments, load the config, start the service, and map
 * failures to exit codes (2 for a user mistake, 1 for anything else). Nothing here speaks a
 * protocol; `server.ts` and `local.ts` do.
 * @module
 */

import { type CliCommand, parseCli, USAGE, VERSION } from "./config/cli.ts";
import { ConfigError } from "./config/errors.ts";
import { errorMessage } from "./protocol/errors.ts";
import { checkPrefix, prefixFromCodePoints } from "./protocol/outline_prefix.ts";
import type { Address } from "./protocol/address.ts";
import { parseHostPort } from "./protocol/host_port.ts";
import { nameOf } from "./service/upstreams.ts";
import {
  checkServer,
  DEFAULT_CHECK_TARGET,
  DEFAULT_UDP_TARGET,
  type FetSummary,
  fetSummary,
} from "./service/check.ts";
import {
  buildLocalConfig,
  buildServerConfigs,
  buildTunnelConfig,
  DEFAULT_GRACE_PERIOD,
  managedServerConfig,
  onlineConfigSpec,
  type ProcessSettings,
  type RawConfig,
  readConfigFile,
  resolveMethod,
} from "./config/load.ts";
import { generatePassword } from "./config/password.ts";
import { shareText } from "./config/share.ts";
import type { LocalConfig, ServerConfig, UpstreamServer } from "./config/types.ts";
import { describeList, describeUrl, fetchSip008 } from "./service/online_config.ts";
import { loadOrCreateZeroConfig, readZeroConfig, ZERO_CONFIG_PATH } from "./config/zero_config.ts";
import { type LocalService, startLocal } from "./local.ts";
import { describeFileLimit, readFileLimit } from "./relay/file_limit.ts";
import { createLogger, type Logger } from "./relay/log.ts";
import type { RunningService, ServiceOptions } from "./relay/service.ts";
import { checkListenerKeys, listenerUpdatable, startListener } from "./server.ts";
import type { FleetNode, FleetView } from "./service/fleet_node.ts";
import { type ListenerEntry, ServerSupervisor } from "./service/supervisor.ts";
import { type RunningManager, startManager } from "./service/manager.ts";
import { apiHandler, startApi } from "./service/api.ts";
import type { StatusServerOptions, StatusSources } from "./service/status.ts";
import {
  readState,
  restore,
  snapshot,
  STATE_INTERVAL_MS,
  type StateDocument,
  writeState,
} from "./service/state.ts";
import { startTunnel } from "./tunnel.ts";
import { prepareProcess, processStarted } from "./service/process.ts";
import { currentResolver } from "./relay/direct.ts";
import { startWorkers } from "./service/workers.ts";
import { ClientIpWindow, fleetGate, localGate } from "./service/client_ips.ts";
import { renderMetrics, startMetricsServer } from "./service/metrics.ts";
import { readProcessSample } from "./service/process_sample.ts";

type RunCommand = Extract<CliCommand, { flags: unknown }>;

/** Runs `ssdeno` with `args` and returns the exit code; failures are thrown for `report`. */
export async function main(args: readonly string[]): Promise<number> {
  const command = await parseCli(args);
  switch (command.name) {
    case "help":
      console.log(USAGE);
      return 0;
    case "version":
      console.log(`ssdeno ${VERSION}`);
      return 0;
    case "genkey":
      return genkey(command);
    case "url":
      return await url(command);
    case "local":
      return await local(command);
    case "server":
      return await server(command);
    case "tunnel":
      return await tunnel(command);
    case "check":
      return await check(command);
  }
}

/** A new random password; a 2022 method gets a PSK of its exact key size. */
function genkey(command: RunCommand): number {
  const method = command.flags["method"];
  const info = typeof method === "string" ? resolveMethod(method) : undefined;
  console.log(generatePassword(info?.family === "aead2022" ? info.keySize : 32));
  return 0;
}

/** Prints the URI and QR code of each listener; falls back to ./ssdeno.json like the server. */
async function url(command: RunCommand): Promise<number> {
  const logger = createLogger(command.logLevel);
  const file = command.file ?? (usesZeroConfig(command) ? await readZeroConfig() : undefined);
  const { configs, warnings, publicHost } = buildServerConfigs(file ?? {}, command.flags);
  warnings.forEach((warning) => logger.warn(warning));
  if (configs.some((config) => config.port === 0)) {
    throw new ConfigError(
      "The server listens on a port chosen at start (server_port 0): give it with -p PORT",
    );
  }
  const prefix = sharedPrefix(command.flags["prefix"], configs, logger);
  console.log(
    await shareText(configs, {
      color: colorOutput(),
      ...(publicHost ? { publicHost } : {}),
      ...(prefix ? { prefix } : {}),
    }),
  );
  return 0;
}

/** `ssdeno url --prefix`: checked against every listener's salt size, like a client's. */
function sharedPrefix(
  text: unknown,
  configs: readonly ServerConfig[],
  logger: Logger,
): Uint8Array | undefined {
  if (typeof text !== "string" || text === "") return undefined;
  const prefix = prefixFromCodePoints(text, "--prefix");
  for (const config of configs) {
    const warning = checkPrefix(prefix, resolveMethod(config.method).saltSize, "--prefix");
    if (warning) logger.warn(warning);
  }
  return prefix;
}

async function local(command: RunCommand): Promise<number> {
  const logger = createLogger(command.logLevel);
  const { config, warnings, process } = await withOnlineServers(
    command,
    logger,
    (online) => buildLocalConfig(command.file ?? {}, command.flags, online),
  );
  warnings.forEach((warning) => logger.warn(warning));
  prepareProcess(process, logger);
  let running: LocalService | undefined;
  return await runServices(
    [{
      label: `${config.localAddress}:${config.localPort}`,
      start: async (o) => running = await startLocal(config, o),
      graceMs: graceMs(config),
    }],
    logger,
    process,
    clientStatus("local", config, () => running, process, logger),
  );
}

async function tunnel(command: RunCommand): Promise<number> {
  const logger = createLogger(command.logLevel);
  const { config, warnings, process } = await withOnlineServers(
    command,
    logger,
    (online) => buildTunnelConfig(command.file ?? {}, command.flags, online),
  );
  warnings.forEach((warning) => logger.warn(warning));
  prepareProcess(process, logger);
  let running: LocalService | undefined;
  return await runServices(
    [{
      label: `${config.localAddress}:${config.localPort}`,
      start: async (o) => running = await startTunnel(config, o),
      graceMs: graceMs(config),
    }],
    logger,
    process,
    clientStatus("tunnel", config, () => running, process, logger),
  );
}

/**
 * `ssdeno check`: every server of the client config (a URI, flags, a `-c` file or an online
 * config) tested end to end, or with `--fet` its first packets rated. Exit 0 only when all pass.
 */
async function check(command: RunCommand): Promise<number> {
  const logger = createLogger(command.logLevel);
  const flags = command.check ?? { fet: false };
  const { config, warnings } = await withOnlineServers(
    command,
    logger,
    (online) => buildLocalConfig(command.file ?? {}, command.flags, online),
  );
  warnings.forEach((warning) => logger.warn(warning));
  const target = hostPortFlag(flags.target ?? DEFAULT_CHECK_TARGET, "--target");
  const servers = config.servers ?? [];
  let failures = 0;
  for (const server of servers) {
    console.log(
      `${nameOf(server)} (${server.method}${server.plugin ? `, ${server.plugin.name}` : ""})`,
    );
    if (flags.fet) {
      if (!fetReport(server, target)) failures++;
      continue;
    }
    const udpText = flags.udpTarget ??
      (config.mode === "tcp_only" ? undefined : DEFAULT_UDP_TARGET);
    const result = await checkServer(server, {
      target,
      ...(udpText ? { udpTarget: hostPortFlag(udpText, "--udp-target") } : {}),
      timeoutMs: config.handshakeTimeout * 1000,
      onStep: (line) => console.log(line),
    });
    console.log(`${result.ok ? "OK" : "FAILED"}: ${result.diagnosis}`);
    if (!result.ok) failures++;
  }
  return failures === 0 ? 0 : 1;
}

/** Prints how first packets fare with the server's prefix (and without); true when all pass. */
function fetReport(server: UpstreamServer, target: Address): boolean {
  const line = (label: string, summary: FetSummary) => {
    const rules = Object.entries(summary.byRule).map(([rule, n]) => `${rule} ${n}`).join(", ");
    console.log(
      `  ${label}: ${summary.exempt} of ${summary.samples} first packets exempt` +
        (rules ? ` (${rules})` : ""),
    );
  };
  if (server.plugin) {
    console.log(`  the first packet is ${server.plugin.name}'s, not ours: nothing to rate`);
    return true;
  }
  const { prefix, ...plain } = server;
  const without = fetSummary(plain, target);
  line("without a prefix", without);
  if (prefix === undefined) {
    if (without.exempt === without.samples) return true;
    console.log(
      `  a censor using these rules would block the others: try a prefix, e.g. ${
        target.port === 443 ? "--prefix %16%03%01%00%C2%A8%01%01 (TLS)" : "--prefix POST%20 (HTTP)"
      }`,
    );
    return false;
  }
  const hex = Array.from(prefix, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const withPrefix = fetSummary(server, target);
  line(`with the prefix ${hex}`, withPrefix);
  return withPrefix.exempt === withPrefix.samples;
}

function hostPortFlag(text: string, flag: string): Address {
  try {
    return parseHostPort(text);
  } catch (error) {
    throw new ConfigError(`Invalid ${flag} "${text}": ${errorMessage(error)}`);
  }
}

/**
 * Builds a client role's config; with an online config (SIP008), from the list fetched now. When
 * that fetch fails, the config's own servers are used until a refresh succeeds; without any,
 * the start fails with the reason.
 */
async function withOnlineServers<T>(
  command: RunCommand,
  logger: Logger,
  build: (online?: UpstreamServer[]) => T,
): Promise<T> {
  const spec = onlineConfigSpec(command.file ?? {}, command.flags);
  if (spec === undefined) return build();
  const where = describeUrl(spec.url);
  let list;
  try {
    list = await fetchSip008(spec.url, undefined, spec.allowInsecure);
  } catch (error) {
    const reason = `Cannot fetch the online config from ${where}: ${errorMessage(error)}`;
    let fallback: T;
    try {
      fallback = build();
    } catch {
      throw new ConfigError(reason);
    }
    logger.warn(`${reason}; using the config's own servers until a refresh succeeds`);
    return fallback;
  }
  list.warnings.forEach((warning) => logger.warn(`online config: ${warning}`));
  logger.info(`online config from ${where}: ${describeList(list)}`);
  return build(list.servers);
}

/**
 * Serves every listener. With no config file and no password this is the zero-config run: it
 * uses (or creates) ./ssdeno.json and prints the URI and QR code once the listeners are up.
 * SIGHUP re-reads the config (the `-c` file, or ./ssdeno.json) and applies the difference
 * (service/supervisor.ts); an invalid new config is logged and the running one kept.
 */
async function server(command: RunCommand): Promise<number> {
  const logger = createLogger(command.logLevel);
  const zeroConfig = usesZeroConfig(command);
  const build = (file: RawConfig) => buildServerConfigs(file, command.flags);
  const loaded = zeroConfig
    ? await loadOrCreateZeroConfig(build, ZERO_CONFIG_PATH, command.flags)
    : { value: build(command.file ?? {}), created: false };
  if (zeroConfig) {
    logger.info(
      loaded.created
        ? `Created ${ZERO_CONFIG_PATH} with a new random password`
        : `Using ${ZERO_CONFIG_PATH}`,
    );
  }
  const { configs, warnings, metrics, manager, api, stateFile, publicHost, showUrl } = loaded.value;
  warnings.forEach((warning) => logger.warn(warning));
  prepareProcess(loaded.value.process, logger);

  // Fleet mode: the Redis client is loaded only when a fleet is configured (~60 ms, ~32 MB).
  let fleet: import("./service/fleet.ts").Fleet | undefined;
  if (loaded.value.fleet) {
    const { url, cluster, tlsCaFile, prefix, strict } = loaded.value.fleet;
    const { Fleet } = await import("./service/fleet.ts");
    const { defaultNodeName } = await import("./service/fleet_node.ts");
    const node = loaded.value.fleet.node ?? defaultNodeName(logger);
    let ca: string | undefined;
    try {
      ca = tlsCaFile === undefined ? undefined : await Deno.readTextFile(tlsCaFile);
    } catch (error) {
      throw new ConfigError(`Cannot read fleet.tls_ca "${tlsCaFile}": ${errorMessage(error)}`);
    }
    fleet = await Fleet.connect({
      url,
      cluster,
      prefix,
      node,
      strict,
      logger,
      ...(ca === undefined ? {} : { tls: { ca } }),
    });
    if (fleet.state !== "up") {
      if (strict) {
        await fleet.close();
        logger.error("fleet: Redis unreachable and fleet.strict is set: not starting");
        return 1;
      }
      logger.warn(
        "fleet: starting without Redis: replay checks, users and counts stay local until it is back",
      );
    }
  }

  const controller = new AbortController();
  // One answer to `max_client_ips` per process (and per fleet, through Redis).
  const ipWindow = new ClientIpWindow(loaded.value.process.clientIpWindowMs);
  const clientIps = fleet ? fleetGate(fleet, ipWindow) : localGate(ipWindow);
  // Every TCP listener in `workers` isolates, with one replay memory for all of them.
  const workers = await startWorkers(loaded.value.process.workers, {
    module: new URL("./server_worker.ts", import.meta.url),
    logger,
    signal: controller.signal,
    clientIps,
    ...(fleet ? { fleet } : {}),
  }).catch(async (error) => {
    await fleet?.close();
    throw error;
  });
  const supervisor = new ServerSupervisor({
    start: async (config) => {
      try {
        return await workers.start(config, (config, shared) =>
          startListener(config, {
            signal: controller.signal,
            logger,
            graceMs: graceMs(config),
            ...shared,
            clientIps,
            ...(fleet ? { fleet } : {}),
          }));
      } catch (error) {
        if (error instanceof ConfigError) throw error;
        throw new StartupError(`${config.address}:${config.port}`, error);
      }
    },
    canUpdate: listenerUpdatable,
    logger,
  });
  const buildManaged = (request: import("./protocol/manager.ts").AddRequest) =>
    managedServerConfig(command.file ?? {}, command.flags, { ...request });
  let fleetNode: FleetNode | undefined;
  if (fleet) {
    const { FleetNode } = await import("./service/fleet_node.ts");
    fleetNode = new FleetNode({
      fleet,
      supervisor,
      buildListener: buildManaged,
      checkConfig: checkListenerKeys,
      logger,
    });
  }
  const fleetView = fleetNode && (() => fleetNode.view);
  let runningFile = command.file;
  let runningConfigs = configs;
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      logger.info("SIGHUP: reloading the config");
      try {
        const file = zeroConfig
          ? await readZeroConfig()
          : command.configPath === undefined
          ? {}
          : await readConfigFile(command.configPath);
        const next = build(file ?? {});
        next.warnings.forEach((warning) => logger.warn(`reload: ${warning}`));
        for (const key of ["fleet", "client_ip_window", "workers"]) {
          if (JSON.stringify(runningFile?.[key]) !== JSON.stringify(file?.[key])) {
            logger.warn(`reload: ${key} changed: it takes effect at the next start`);
          }
        }
        runningFile = file;
        // In a fleet, users the file added, changed or removed go to every node through Redis.
        // (what did not reach Redis is sent again at the next reload).
        const sent = await fleetNode?.applyConfigUsers(runningConfigs, next.configs) ?? true;
        if (sent) runningConfigs = next.configs;
        const lines = await supervisor.apply(next.configs);
        if (lines.length === 0) logger.info("reload: nothing changed");
      } catch (error) {
        logger.error(`reload failed, the running config stays: ${errorMessage(error)}`);
      }
    });
  };
  const removeSignals = handleSignals(
    controller,
    logger,
    () => ({
      services: supervisor.listeners.map((entry) => entry.service),
      grace: Math.max(...supervisor.listeners.map((entry) => graceMs(entry.config))),
    }),
    reload,
  );
  let saveState: (() => Promise<void>) | undefined;
  let atExit: (() => Promise<void>) | undefined;
  try {
    await fleetNode?.prepare(configs);
    await supervisor.startAll(configs);
    logger.info(describeFileLimit(readFileLimit()));
    if (stateFile) {
      const saved = await readState(stateFile);
      saveState = keepState(stateFile, supervisor, controller.signal, logger, saved);
    }
    fleetNode?.start();
    const status = loaded.value.process.status;
    // On the status listener's address, metrics and the API are served by it (one listener).
    const sharedMetrics = sameAddress(metrics, status);
    const sharedApi = sameAddress(api, status);
    if (metrics && !sharedMetrics) {
      startMetrics(
        metrics,
        metricsText(() => supervisor.listeners, fleetView, () => workers.isolates),
        controller.signal,
        logger,
      );
    }
    if (status) {
      startStatus(
        status,
        {
          role: "server",
          listeners: () => supervisor.listeners,
          workers: () => workers.isolates,
          ...(fleetView ? { fleet: fleetView } : {}),
        },
        controller.signal,
        logger,
        {
          ...(sharedMetrics
            ? {
              metrics: metricsText(() => supervisor.listeners, fleetView, () => workers.isolates),
            }
            : {}),
          ...(sharedApi && api
            ? {
              fallback: apiHandler({
                supervisor,
                version: VERSION,
                ...(api.token === undefined ? {} : { token: api.token }),
                ...(api.secretPath === undefined ? {} : { secretPath: api.secretPath }),
                ...(fleetNode ? { userStore: fleetNode } : {}),
              }),
            }
            : {}),
        },
      );
    }
    if (api && !sharedApi) {
      let running;
      try {
        running = startApi({
          hostname: api.host,
          port: api.port,
          supervisor,
          version: VERSION,
          ...(api.token === undefined ? {} : { token: api.token }),
          ...(api.secretPath === undefined ? {} : { secretPath: api.secretPath }),
          ...(fleetNode ? { userStore: fleetNode } : {}),
        });
      } catch (error) {
        throw new StartupError(`api ${api.host}:${api.port}`, error);
      }
      logger.info(`management API on http://${formatHostPort(running.addr)}`);
      controller.signal.addEventListener("abort", () => running.close(), { once: true });
    }
    if (manager) {
      let running: RunningManager;
      try {
        running = startManager({
          hostname: manager.host,
          port: manager.port,
          supervisor,
          buildConfig: buildManaged,
          logger,
          ...(fleetNode ? { listenerStore: fleetNode } : {}),
        });
      } catch (error) {
        throw new StartupError(`manager ${manager.host}:${manager.port}`, error);
      }
      controller.signal.addEventListener("abort", () => running.close(), { once: true });
    }
    // Every port is bound: now the PID file and the switch away from root.
    atExit = await processStarted(loaded.value.process, logger);
    // The URIs hold the keys: printed when they are new (the first run made them) or asked
    // for, never in quiet mode; otherwise the log says how to print them.
    const quiet = command.logLevel === "warn";
    if ((loaded.created || showUrl) && !quiet) {
      // The bound port, which differs from the configured one when that was 0.
      const live = supervisor.listeners.map(({ config, service }) => ({
        ...config,
        port: service.addr.port,
      }));
      console.log(
        await shareText(live, { color: colorOutput(), ...(publicHost ? { publicHost } : {}) }),
      );
    } else if (supervisor.listeners.length > 0) {
      logger.info("`ssdeno url` (with the same -c or flags) prints the ss:// URIs and QR codes");
    }
    await new Promise<void>((resolve) => {
      if (controller.signal.aborted) resolve();
      controller.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await reloading;
    await supervisor.closeAll();
    await saveState?.();
    return 0;
  } finally {
    controller.abort();
    await supervisor.closeAll();
    await workers.close();
    fleetNode?.close();
    await fleet?.close();
    await atExit?.();
    removeSignals();
  }
}

function graceMs(config: { gracePeriod?: number }): number {
  return (config.gracePeriod ?? DEFAULT_GRACE_PERIOD) * 1000;
}

/**
 * Restores the per-user counters saved in `path` and saves them every minute; returns the save
 * to run once more after the listeners have closed at shutdown.
 */
function keepState(
  path: string,
  supervisor: ServerSupervisor,
  signal: AbortSignal,
  logger: Logger,
  saved: StateDocument | undefined,
): () => Promise<void> {
  const listeners = () =>
    supervisor.listeners.map(({ config, service }) => ({ port: config.port, service }));
  if (saved) logger.info(`${path}: restored the counters of ${restore(listeners(), saved)} users`);
  let last = listeners();
  const save = async () => {
    try {
      await writeState(path, snapshot(last));
    } catch (error) {
      logger.error(`cannot write ${path}: ${errorMessage(error)}`);
    }
  };
  const timer = setInterval(() => {
    last = listeners();
    save();
  }, STATE_INTERVAL_MS);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    last = listeners();
  }, { once: true });
  // Called once the listeners have closed: their sessions have all been counted.
  return save;
}

/** The metrics text of the listeners running at each call, and of the process. */
function metricsText(
  listeners: () => ListenerEntry[],
  fleet: (() => FleetView) | undefined,
  isolates: () => number,
): () => string {
  return () =>
    renderMetrics(
      listeners().map(({ config, service }) => ({
        port: service.addr.port,
        users: config.users?.map((user) => user.name) ?? [],
        service,
      })),
      VERSION,
      currentResolver().stats,
      fleet?.(),
      readProcessSample(isolates()),
    );
}

function sameAddress(
  a: { host: string; port: number } | undefined,
  b: { host: string; port: number } | undefined,
): boolean {
  return a !== undefined && b !== undefined && a.host === b.host && a.port === b.port;
}

/**
 * A local's or tunnel's status page, when asked for: its own listener's sessions, and the
 * health of each server it goes through (the balancer's view).
 */
function clientStatus(
  role: "local" | "tunnel",
  config: LocalConfig,
  service: () => LocalService | undefined,
  process: ProcessSettings,
  logger: Logger,
): ((started: Started[], signal: AbortSignal) => Promise<void>) | undefined {
  const where = process.status;
  if (where === undefined) return undefined;
  return (_started, signal) => {
    startStatus(
      where,
      {
        role,
        listeners: () => {
          const running = service();
          return running
            ? [{
              config: {
                address: config.localAddress,
                port: running.addr.port,
                method: config.method,
                mode: config.mode,
              },
              service: running,
            }]
            : [];
        },
        upstreams: () => service()?.upstreams.balancer.servers ?? [],
      },
      signal,
      logger,
    );
    return Promise.resolve();
  };
}

/**
 * Serves the status page (and what shares its listener) until `signal` aborts. The page and its
 * chart library load only when asked for, so other runs neither parse nor need them.
 */
async function startStatus(
  where: NonNullable<ProcessSettings["status"]>,
  sources: StatusSources,
  signal: AbortSignal,
  logger: Logger,
  shared: Pick<StatusServerOptions, "metrics" | "fallback"> = {},
): Promise<void> {
  const { startStatusServer } = await import("./service/status.ts");
  let running;
  try {
    running = startStatusServer({
      hostname: where.host,
      port: where.port,
      version: VERSION,
      logger,
      signal,
      sources,
      ...(where.token === undefined ? {} : { token: where.token }),
      ...(where.secretPath === undefined ? {} : { secretPath: where.secretPath }),
      ...shared,
    });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new StartupError(`status ${where.host}:${where.port}`, error);
  }
  logger.info(`status page on ${running.url}`);
}

/** Serves the listeners' metrics (whichever run at each scrape) until `signal` aborts. */
function startMetrics(
  where: { host: string; port: number },
  render: () => string,
  signal: AbortSignal,
  logger: Logger,
): void {
  let server;
  try {
    server = startMetricsServer(where.host, where.port, render);
  } catch (error) {
    throw new StartupError(`metrics ${where.host}:${where.port}`, error);
  }
  logger.info(`metrics on http://${formatHostPort(server.addr)}/metrics`);
  signal.addEventListener("abort", () => server.close(), { once: true });
}

function formatHostPort(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** No `-c` and no password from the flags: settings come from ./ssdeno.json. */
function usesZeroConfig(command: RunCommand): boolean {
  return command.configPath === undefined && command.flags["password"] === undefined &&
    command.flags["manager_address"] === undefined;
}

function colorOutput(): boolean {
  return Deno.stdout.isTerminal() && !Deno.noColor;
}

interface Launch {
  label: string;
  start(options: ServiceOptions): Promise<RunningService>;
  /** How long its sessions may finish after SIGTERM/SIGINT. */
  graceMs: number;
  config?: ServerConfig;
}

interface Started {
  config: ServerConfig;
  service: RunningService;
}

/** A listener that could not start: the message names the address it wanted. */
class StartupError extends Error {
  constructor(label: string, cause: unknown) {
    super(`Cannot start on ${label}: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
    this.name = "StartupError";
  }
}

/**
 * Starts every service under one `AbortController` that SIGINT and SIGTERM abort, and returns
 * 0 once all have closed. If one fails to start, the started ones are shut down first.
 */
async function runServices(
  launches: readonly Launch[],
  logger: Logger,
  process: ProcessSettings,
  onStarted?: (started: Started[], signal: AbortSignal) => Promise<void>,
): Promise<number> {
  let atExit: (() => Promise<void>) | undefined;
  const controller = new AbortController();
  const services: RunningService[] = [];
  const grace = Math.max(...launches.map((launch) => launch.graceMs));
  const removeSignals = handleSignals(
    controller,
    logger,
    () => ({ services, grace }),
    () => logger.warn("SIGHUP: only the server reloads its config; still running as started"),
  );

  try {
    const started: Started[] = [];
    for (const launch of launches) {
      let service: RunningService;
      try {
        service = await launch.start({
          signal: controller.signal,
          logger,
          graceMs: launch.graceMs,
        });
      } catch (error) {
        if (error instanceof ConfigError) throw error;
        throw new StartupError(launch.label, error);
      }
      services.push(service);
      if (launch.config) started.push({ config: launch.config, service });
    }
    // The limit caps how many sessions this process can hold; say it once, where operators look.
    logger.info(describeFileLimit(readFileLimit()));
    atExit = await processStarted(process, logger);
    await onStarted?.(started, controller.signal);
    await Promise.all(services.map((service) => service.closed));
    return 0;
  } finally {
    controller.abort();
    await Promise.allSettled(services.map((service) => service.closed));
    await atExit?.();
    removeSignals();
  }
}

/**
 * SIGINT and SIGTERM abort `controller` (stop accepting, grace period, cut), a second one exits
 * at once; SIGHUP calls `onHangup` (its default action would end the process without a word).
 * Returns the function that removes the handlers.
 */
function handleSignals(
  controller: AbortController,
  logger: Logger,
  now: () => { services: readonly RunningService[]; grace: number },
  onHangup: () => void,
): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const onSignal = () => {
    if (controller.signal.aborted) {
      logger.warn("Second signal: exiting without waiting for sessions");
      Deno.exit(1);
    }
    const { services, grace } = now();
    const live = services.reduce((sum, service) => sum + service.stats.active, 0);
    logger.info(
      `Shutting down: no new sessions; ${live} live session${live === 1 ? "" : "s"} get up to ` +
        `${grace / 1000} s to finish (a second signal exits at once)`,
    );
    controller.abort();
  };
  signals.forEach((signal) => Deno.addSignalListener(signal, onSignal));
  const hangup = Deno.build.os === "windows" ? undefined : "SIGHUP";
  if (hangup) Deno.addSignalListener(hangup, onHangup);
  return () => {
    signals.forEach((signal) => Deno.removeSignalListener(signal, onSignal));
    if (hangup) Deno.removeSignalListener(hangup, onHangup);
  };
}

/** Maps an escaped error to one line on stderr and the exit code. */
function report(error: unknown): number {
  if (error instanceof ConfigError) {
    console.error(`ssdeno: ${error.message}`);
    return 2;
  }
  // Expected runtime failures (bind, permissions, I/O) are one line; anything else is a bug,
  // and its stack is what a bug report needs.
  const expected = error instanceof StartupError ||
    Object.values(Deno.errors).some((type) => error instanceof type);
  const text = error instanceof Error ? (expected ? error.message : error.stack) : String(error);
  console.error(`ssdeno: ${text}`);
  return 1;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    code = report(error);
  }
  Deno.exit(code);
}
