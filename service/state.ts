/**
 * Per-user counters kept across restarts (`state_file`): bytes both ways, TCP and UDP sessions
 * and last seen, per listener port and user, so a data limit is not reset by a restart. Written
 * every `STATE_INTERVAL_MS` and at shutdown to a temporary file renamed over the old one (a crash
 * mid-write leaves the previous state whole); read once at start and added to the counters.
 * @module
 */
import type { RunningService } from "../relay/service.ts";

export const STATE_INTERVAL_MS = 60_000;

interface SavedUser {
  bytesUplink: number;
  bytesDownlink: number;
  sessions: number;
  udpBytesUplink: number;
  udpBytesDownlink: number;
  udpSessions: number;
  lastSeen: number;
}

/** The file's shape: `{"version": 1, "ports": {"8388": {"users": {"alice": {…}}}}}`. */
export interface StateDocument {
  version: 1;
  ports: Record<string, { users: Record<string, SavedUser> }>;
}

export interface StatefulListener {
  readonly port: number;
  readonly service: RunningService;
}

/** The counters of every user of `listeners` now. */
export function snapshot(listeners: readonly StatefulListener[]): StateDocument {
  const ports: StateDocument["ports"] = {};
  for (const { port, service } of listeners) {
    const users: Record<string, SavedUser> = {};
    const names = new Set([
      ...Object.keys(service.stats.users),
      ...Object.keys(service.udpStats?.users ?? {}),
    ]);
    for (const name of names) {
      const tcp = service.stats.users[name];
      const udp = service.udpStats?.users[name];
      users[name] = {
        bytesUplink: tcp?.bytesUplink ?? 0,
        bytesDownlink: tcp?.bytesDownlink ?? 0,
        sessions: tcp?.sessions ?? 0,
        udpBytesUplink: udp?.bytesUplink ?? 0,
        udpBytesDownlink: udp?.bytesDownlink ?? 0,
        udpSessions: udp?.sessions ?? 0,
        lastSeen: tcp?.lastSeen ?? 0,
      };
    }
    if (names.size > 0) ports[`${port}`] = { users };
  }
  return { version: 1, ports };
}

/** Adds the saved counters to the running ones (users still configured on the same port). */
export function restore(listeners: readonly StatefulListener[], state: StateDocument): number {
  let restored = 0;
  for (const { port, service } of listeners) {
    const saved = state.ports[`${port}`]?.users ?? {};
    for (const [name, counts] of Object.entries(saved)) {
      const tcp = service.stats.users[name];
      if (!tcp) continue;
      tcp.bytesUplink += counts.bytesUplink;
      tcp.bytesDownlink += counts.bytesDownlink;
      tcp.sessions += counts.sessions;
      tcp.lastSeen = Math.max(tcp.lastSeen, counts.lastSeen);
      const udp = service.udpStats?.users[name];
      if (udp) {
        udp.bytesUplink += counts.udpBytesUplink;
        udp.bytesDownlink += counts.udpBytesDownlink;
        udp.sessions += counts.udpSessions;
      }
      restored++;
    }
  }
  return restored;
}

/** Reads the state file; `undefined` when there is none yet. Throws for one that is not ours. */
export async function readState(path: string): Promise<StateDocument | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const value = JSON.parse(text);
  if (value?.version !== 1 || typeof value.ports !== "object" || value.ports === null) {
    throw new Error(`${path} is not an ssdeno state file (version 1)`);
  }
  return value as StateDocument;
}

/** Writes `state` atomically: a temporary file in the same folder, then a rename. */
export async function writeState(path: string, state: StateDocument): Promise<void> {
  const temporary = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(temporary, JSON.stringify(state) + "\n", { mode: 0o600 });
  await Deno.rename(temporary, path);
}
