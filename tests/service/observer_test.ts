import assert from "node:assert/strict";
import { createLogger } from "../../relay/log.ts";
import {
  formatOutcome,
  loggingObserver,
  PROBE_LINES,
  PROBE_WINDOW_MS,
  SERVER_INFO_STATUSES,
} from "../../service/observer.ts";

const probe = {
  peer: "198.51.100.7:4000",
  status: "ERR_CIPHER",
  detail: "bad tag",
  durationMs: 3,
} as const;

Deno.test("probe lines are throttled per window, then the skipped ones are counted", () => {
  const lines: string[] = [];
  let now = 0;
  const observer = loggingObserver("server", createLogger("info", (line) => lines.push(line)), {
    infoStatuses: SERVER_INFO_STATUSES,
    now: () => now,
  });
  for (let i = 0; i < PROBE_LINES + 5; i++) observer.sessionEnded(probe);
  assert.equal(lines.length, PROBE_LINES);
  now += PROBE_WINDOW_MS;
  observer.sessionEnded(probe);
  assert.match(lines[PROBE_LINES]!, /server: 5 more failed handshakes were not logged/);
  assert.equal(lines.length, PROBE_LINES + 2);
  // Other statuses are never throttled.
  for (let i = 0; i < 50; i++) {
    observer.sessionEnded({ ...probe, status: "ERR_CONNECT", detail: "refused" });
  }
  assert.equal(lines.length, PROBE_LINES + 52);
});

Deno.test("a local logs probes at debug, a server at info", () => {
  const local: string[] = [];
  loggingObserver("local", createLogger("info", (line) => local.push(line))).sessionEnded(probe);
  assert.deepEqual(local, []);
});

Deno.test("one line names peer, user, target, route, status, detail and duration", () => {
  assert.equal(
    formatOutcome("local", {
      peer: "127.0.0.1:5000",
      user: "bob",
      target: "example.com:443",
      via: "1.2.3.4:8388",
      status: "OK",
      detail: "relayed",
      durationMs: 12,
    }),
    'local 127.0.0.1:5000 user "bob" → example.com:443 via 1.2.3.4:8388 OK relayed (12 ms)',
  );
});
