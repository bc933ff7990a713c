/**
 * The status page's parts without a browser: the history ring, the rates, "today", and the
 * handler's routes, snapshot and access rules (service/status.ts, service/status_history.ts).
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../protocol/errors.ts";
import type { Outbound } from "../../outbound/outbound.ts";
import type { ServerState } from "../../outbound/balancer.ts";
import { createStats, createUserStats, type RunningService } from "../../relay/service.ts";
import { createUdpStats } from "../../relay/udp_stats.ts";
import {
  isLoopbackHost,
  startStatusServer,
  statusHandler,
  type StatusHandlerOptions,
  type StatusListener,
  type StatusSnapshot,
} from "../../service/status.ts";
import {
  type Counters,
  DailyCounters,
  localMidnight,
  OUTCOME_GROUPS,
  sampleBetween,
  StatusHistory,
} from "../../service/status_history.ts";

function counters(at: number, up: number, down: number, extra: Partial<Counters> = {}): Counters {
  return { at, up, down, live: 0, outcomes: OUTCOME_GROUPS.map(() => 0), users: {}, ...extra };
}

Deno.test("sampleBetween() gives bytes per second, sessions ended, and the busiest users", () => {
  const prev = counters(10_000, 1000, 5000, {
    outcomes: [5, 1, 0, 0, 0, 0],
    users: { a: [0, 0], b: [100, 100], c: [50, 50] },
  });
  const next = counters(12_000, 3000, 9000, {
    live: 3,
    outcomes: [7, 4, 1, 0, 0, 0],
    users: { a: [2000, 0], b: [100, 100], c: [50, 4050], d: [10, 10] },
  });
  assert.deepEqual(sampleBetween(prev, next, 2), {
    t: 12,
    up: 1000,
    down: 2000,
    live: 3,
    outcomes: [2, 3, 1, 0, 0, 0],
    // c moved 4000 B in 2 s, a 2000 B, d 20 B: d is beyond the two kept; b did not move.
    users: { c: [0, 2000], a: [1000, 0] },
  });
});

Deno.test("sampleBetween() counts a counter that went down (cleared) as no traffic", () => {
  const prev = counters(0, 5000, 5000, { outcomes: [9, 0, 0, 0, 0, 0], users: { a: [900, 900] } });
  const next = counters(1000, 10, 6000, { users: { a: [1, 1] } });
  const sample = sampleBetween(prev, next, 64);
  assert.equal(sample.up, 0);
  assert.equal(sample.down, 1000);
  assert.deepEqual(sample.outcomes, [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(sample.users, {});
});

Deno.test("sampleBetween()'s source runs on its own, as the page runs it", () => {
  const standalone = new Function(`${sampleBetween}; return sampleBetween;`)();
  const prev = counters(0, 0, 0, { users: { a: [0, 0] } });
  const next = counters(1000, 10, 20, { live: 1, users: { a: [5, 6] } });
  assert.deepEqual(standalone(prev, next, 64), sampleBetween(prev, next, 64));
});

Deno.test("StatusHistory keeps the last `capacity` samples, oldest first", () => {
  const history = new StatusHistory({ capacity: 3 });
  assert.equal(history.add(counters(0, 0, 0)), undefined);
  for (let i = 1; i <= 5; i++) history.add(counters(i * 1000, i * 10, 0));
  assert.equal(history.size, 3);
  assert.deepEqual(history.samples().map((s) => s.t), [3, 4, 5]);
  assert.deepEqual(history.samples().map((s) => s.up), [10, 10, 10]);
  assert.equal(history.last?.at, 5000);
  assert.throws(() => new StatusHistory({ capacity: 0 }), RangeError);
});

Deno.test("DailyCounters counts from the start, then from each local midnight", () => {
  const start = new Date(2026, 2, 14, 22, 30).getTime();
  const daily = new DailyCounters(start);
  assert.equal(daily.since, start);
  assert.deepEqual(daily.update(start, { a: [100, 200] }), { a: [0, 0] });
  assert.deepEqual(daily.update(start + 60_000, { a: [150, 260] }), { a: [50, 60] });
  // A user first seen later counts from then.
  assert.deepEqual(daily.update(start + 120_000, { a: [150, 260], b: [7, 7] }), {
    a: [50, 60],
    b: [0, 0],
  });
  const nextDay = new Date(2026, 2, 15, 0, 0, 1).getTime();
  assert.deepEqual(daily.update(nextDay, { a: [400, 500], b: [7, 9] }), {
    a: [0, 0],
    b: [0, 0],
  });
  assert.equal(daily.since, localMidnight(nextDay));
  assert.deepEqual(daily.update(nextDay + 1000, { a: [410, 500], b: [7, 9] }), {
    a: [10, 0],
    b: [0, 0],
  });
  // Cleared through the API: counts from zero again. Gone: forgotten.
  assert.deepEqual(daily.update(nextDay + 2000, { a: [3, 4] }), { a: [3, 4] });
  assert.deepEqual(daily.update(nextDay + 3000, { a: [5, 4], b: [1, 1] }), {
    a: [5, 4],
    b: [0, 0],
  });
});

Deno.test("isLoopbackHost() knows loopback names and addresses", () => {
  for (const host of ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ["0.0.0.0", "::", "192.168.1.2", "10.0.0.1", "example.com", "1127.0.0.1"]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});

/** A stand-in for a running listener with counters the test sets. */
function fakeService(port: number, users: string[] = []): RunningService {
  return {
    addr: { transport: "tcp", hostname: "127.0.0.1", port },
    stats: createStats(createUserStats(users)),
    udpStats: createUdpStats(users),
    closed: Promise.resolve(),
    close: () => Promise.resolve(),
    retire: () => Promise.resolve({ drained: Promise.resolve() }),
  };
}

function fakeUpstream(name: string, state: Partial<ServerState>): ServerState {
  const outbound: Outbound = { name, connect: () => Promise.reject(new Error("not here")) };
  return { outbound, health: "unknown", latencyMs: undefined, lastError: undefined, ...state };
}

/** A handler over one multi-user and one single-key listener, with a test clock. */
function setup(overrides: Partial<StatusHandlerOptions> = {}) {
  const multi: StatusListener = {
    config: {
      address: "0.0.0.0",
      port: 8388,
      method: "2022-blake3-aes-128-gcm",
      mode: "tcp_and_udp",
      users: [{ name: "alice", dataLimit: 1000 }, { name: "bob" }],
    },
    service: fakeService(8388, ["alice", "bob"]),
  };
  const single: StatusListener = {
    config: { address: "::", port: 8389, method: "aes-128-gcm", mode: "tcp_only" },
    service: fakeService(8389),
  };
  let now = new Date(2026, 2, 14, 12, 0).getTime();
  const controller = new AbortController();
  const handle = statusHandler({
    sources: {
      role: "server",
      listeners: () => [multi, single],
      upstreams: () => [
        fakeUpstream("a.example:8388", { health: "up", latencyMs: 42 }),
        fakeUpstream("b.example:8388", { health: "down", lastError: "connection refused" }),
      ],
    },
    version: "9.9.9",
    signal: controller.signal,
    now: () => now,
    intervalMs: 60_000,
    ...overrides,
  });
  return {
    multi,
    single,
    handle,
    advance: (ms: number) => now += ms,
    get: (path: string, init: RequestInit = {}, info?: Deno.ServeHandlerInfo) =>
      handle(new Request(`http://127.0.0.1${path}`, init), info),
    [Symbol.dispose]: () => controller.abort(),
  };
}

function remote(hostname: string): Deno.ServeHandlerInfo {
  return {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
    completed: Promise.resolve(),
  } as unknown as Deno.ServeHandlerInfo;
}

Deno.test("statusHandler() answers its own paths only", async () => {
  using status = setup();
  for (const path of ["/", "/metrics", "/users", "/statusx", "/api/ssm/v1/servers"]) {
    assert.equal(await status.get(path), undefined, path);
  }
  const redirect = await status.get("/status");
  assert.equal(redirect?.status, 303);
  assert.equal(redirect?.headers.get("location"), "/status/");
  const page = await status.get("/status/");
  assert.equal(page?.status, 200);
  assert.match(page!.headers.get("content-type")!, /^text\/html/);
  assert.match(page!.headers.get("content-security-policy")!, /script-src 'self'/);
  assert.match(await page!.text(), /<title>ssdeno status<\/title>/);
  for (const [name, type] of [["app.js", /javascript/], ["uplot.js", /javascript/]] as const) {
    const response = await status.get(`/status/${name}`);
    assert.match(response!.headers.get("content-type")!, type);
    assert.ok((await response!.text()).length > 1000, name);
  }
  assert.match(await (await status.get("/status/uplot.js"))!.text(), /uPlot/);
  assert.match(await (await status.get("/status/app.js"))!.text(), /function sampleBetween/);
  for (const path of ["/status/nope", "/status/__proto__", "/status/toString"]) {
    const response = await status.get(path);
    assert.equal(response?.status, 404, path);
    await response?.body?.cancel();
  }
  const head = await status.get("/status/events", { method: "HEAD" });
  assert.equal(head?.status, 200);
  assert.equal(head?.body, null);
  const post = await status.get("/status/snapshot.json", { method: "POST" });
  assert.equal(post?.status, 405);
  await post?.body?.cancel();
});

Deno.test("the snapshot lists every listener, and a row per user or single-key listener", async () => {
  using status = setup();
  const snapshot: StatusSnapshot = await (await status.get("/status/snapshot.json"))!.json();
  assert.equal(snapshot.version, "9.9.9");
  assert.equal(snapshot.role, "server");
  assert.equal(snapshot.workers, 1);
  assert.deepEqual(snapshot.listeners, [
    {
      address: "0.0.0.0:8388",
      method: "2022-blake3-aes-128-gcm",
      mode: "tcp_and_udp",
      users: 2,
      live: 0,
    },
    { address: "[::]:8389", method: "aes-128-gcm", mode: "tcp_only", users: 0, live: 0 },
  ]);
  assert.deepEqual(snapshot.users.map((u) => [u.key, u.name]), [
    ["0.0.0.0:8388/alice", "alice"],
    ["0.0.0.0:8388/bob", "bob"],
    ["[::]:8389", null],
  ]);
  assert.equal(snapshot.todaySince, snapshot.startedAt);
  using started = setup({ startedAt: 1000 });
  const early: StatusSnapshot = await (await started.get("/status/snapshot.json"))!.json();
  assert.equal(early.startedAt, 1000);
  assert.ok(early.todaySince > 1000, "today counts from when the counting began");
  const history = await (await status.get("/status/history.json"))!.json();
  assert.equal(history.capacity, 900);
  assert.deepEqual(history.samples, []);
  assert.deepEqual(history.groups, OUTCOME_GROUPS);
  assert.deepEqual(history.counters, snapshot.counters);
});

Deno.test("each tick's snapshot carries the counters, per user, with the data limit used", async () => {
  const controller = new AbortController();
  const service = fakeService(8388, ["alice", "bob"]);
  const listener: StatusListener = {
    config: {
      address: "127.0.0.1",
      port: 8388,
      method: "2022-blake3-aes-128-gcm",
      mode: "tcp_and_udp",
      users: [{ name: "alice", dataLimit: 1000 }, { name: "bob" }],
    },
    service,
  };
  const handle = statusHandler({
    sources: { role: "server", listeners: () => [listener] },
    version: "t",
    signal: controller.signal,
    intervalMs: 5,
  });
  try {
    service.stats.users.alice!.bytesUplink = 300;
    service.stats.users.alice!.bytesDownlink = 500;
    service.stats.users.alice!.sessions = 2;
    service.stats.users.alice!.lastSeen = 1234;
    service.udpStats!.users.bob!.bytesUplink = 40;
    service.udpStats!.users.bob!.sessions = 1;
    service.stats.bytesUplink = 300;
    service.stats.bytesDownlink = 500;
    service.udpStats!.bytesUplink = 40;
    service.stats.active = 1;
    service.stats.statuses.OK = 5;
    service.stats.statuses.ERR_CIPHER = 3;
    service.stats.statuses.ERR_REPLAY = 1;
    let snapshot: StatusSnapshot;
    const deadline = Date.now() + 5000;
    do {
      await new Promise((resolve) => setTimeout(resolve, 5));
      snapshot = await (await handle(new Request("http://127.0.0.1/status/snapshot.json")))!
        .json();
    } while (snapshot.counters.up === 0 && Date.now() < deadline);
    assert.deepEqual(
      { up: snapshot.counters.up, down: snapshot.counters.down, live: snapshot.counters.live },
      { up: 340, down: 500, live: 1 },
    );
    assert.deepEqual(snapshot.counters.outcomes, [5, 3, 1, 0, 0, 0]);
    assert.equal(snapshot.statuses.ERR_CIPHER, 3);
    const [alice, bob] = snapshot.users;
    assert.deepEqual(
      { ...alice, todayUp: 0, todayDown: 0 },
      {
        key: "127.0.0.1:8388/alice",
        name: "alice",
        listener: "127.0.0.1:8388",
        up: 300,
        down: 500,
        todayUp: 0,
        todayDown: 0,
        sessions: 2,
        lastSeen: 1234,
        dataLimit: 1000,
        used: 800,
      },
    );
    assert.deepEqual([bob?.name, bob?.up, bob?.sessions, bob?.dataLimit], ["bob", 40, 1, null]);
    assert.deepEqual(snapshot.counters.users["127.0.0.1:8388/alice"], [300, 500]);
  } finally {
    controller.abort();
  }
});

Deno.test("the snapshot shows the balancer's view of each upstream server", async () => {
  using status = setup();
  const snapshot: StatusSnapshot = await (await status.get("/status/snapshot.json"))!.json();
  assert.deepEqual(snapshot.upstreams, [
    { name: "a.example:8388", health: "up", latencyMs: 42, lastError: null },
    { name: "b.example:8388", health: "down", latencyMs: null, lastError: "connection refused" },
  ]);
});

Deno.test("with a token, the page needs it: bearer, or ?token= traded for a cookie", async () => {
  using status = setup({ token: "t0ken/with;odd=chars" });
  const denied = await status.get("/status/");
  assert.equal(denied?.status, 401);
  assert.match(denied!.headers.get("www-authenticate")!, /^Bearer/);
  await denied?.body?.cancel();
  const wrong = await status.get("/status/", { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong?.status, 401);
  await wrong?.body?.cancel();
  const bearer = await status.get("/status/snapshot.json", {
    headers: { authorization: "Bearer t0ken/with;odd=chars" },
  });
  assert.equal(bearer?.status, 200);
  await bearer?.body?.cancel();

  const traded = await status.get(`/status/?token=${encodeURIComponent("t0ken/with;odd=chars")}`);
  assert.equal(traded?.status, 303);
  assert.equal(traded?.headers.get("location"), "/status/");
  const cookie = traded!.headers.get("set-cookie")!;
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/status\//);
  const pair = cookie.split(";")[0]!;
  const withCookie = await status.get("/status/events", { headers: { cookie: `a=b; ${pair}` } });
  assert.equal(withCookie?.status, 200);
  await withCookie?.body?.cancel();
  const badCookie = await status.get("/status/", { headers: { cookie: "ssdeno_status=%E0%A4" } });
  assert.equal(badCookie?.status, 401);
  await badCookie?.body?.cancel();
  const wrongQuery = await status.get("/status/?token=nope");
  assert.equal(wrongQuery?.status, 401);
  await wrongQuery?.body?.cancel();
});

Deno.test("with a secret path, only paths under it answer", async () => {
  using status = setup({ secretPath: "/s3cret-path" });
  assert.equal(await status.get("/status/"), undefined);
  const page = await status.get("/s3cret-path/status/", {}, remote("203.0.113.9"));
  assert.equal(page?.status, 200);
  await page?.body?.cancel();
  const redirect = await status.get("/s3cret-path/status");
  assert.equal(redirect?.headers.get("location"), "/s3cret-path/status/");
  assert.throws(() => setup({ secretPath: "/short" }), ConfigError);
  assert.throws(() => setup({ secretPath: "no-slash-here" }), ConfigError);
});

Deno.test("without token or secret path, a non-loopback client is refused", async () => {
  using status = setup();
  const far = await status.get("/status/", {}, remote("203.0.113.9"));
  assert.equal(far?.status, 403);
  await far?.body?.cancel();
  for (const near of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
    const response = await status.get("/status/", {}, remote(near));
    assert.equal(response?.status, 200, near);
    await response?.body?.cancel();
  }
  using guarded = setup({ token: "tok" });
  const withToken = await guarded.get("/status/", {
    headers: { authorization: "Bearer tok" },
  }, remote("203.0.113.9"));
  assert.equal(withToken?.status, 200);
  await withToken?.body?.cancel();
});

/** Reads server-sent events from `response` until `count` have come (5 s at most). */
async function readEvents(response: Response, count: number) {
  const events: Array<{ event: string; data: unknown }> = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => reader.cancel(new Error("timed out")), 5000);
  let buffer = "";
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data) events.push({ event: name, data: JSON.parse(data) });
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel();
  }
  return events;
}

Deno.test("the event stream sends the history, then a snapshot every tick", async () => {
  using status = setup({ intervalMs: 10, now: Date.now });
  const response = await status.get("/status/events");
  assert.match(response!.headers.get("content-type")!, /^text\/event-stream/);
  const events = await readEvents(response!, 4);
  assert.deepEqual(events.map((e) => e.event), ["history", "snapshot", "snapshot", "snapshot"]);
  const ats = events.slice(1).map((e) => (e.data as StatusSnapshot).counters.at);
  assert.ok(ats[2]! >= ats[1]! && ats[1]! >= ats[0]!, String(ats));
});

Deno.test("too many event streams get a 503, and aborting ends the open ones", async () => {
  const controller = new AbortController();
  const handle = statusHandler({
    sources: { role: "local", listeners: () => [] },
    version: "t",
    signal: controller.signal,
    maxClients: 1,
  });
  const first = await handle(new Request("http://127.0.0.1/status/events"));
  const second = await handle(new Request("http://127.0.0.1/status/events"));
  assert.equal(second?.status, 503);
  await second?.body?.cancel();
  const reading = first!.text();
  controller.abort();
  assert.match(await reading, /^retry: 2000\n\nevent: history\n/);
});

Deno.test("a page that stops reading its event stream is dropped", async () => {
  const controller = new AbortController();
  const handle = statusHandler({
    sources: { role: "server", listeners: () => [] },
    version: "t",
    signal: controller.signal,
    intervalMs: 1,
    maxClients: 1,
  });
  try {
    const stalled = await handle(new Request("http://127.0.0.1/status/events"));
    assert.equal(stalled?.status, 200);
    // Never read: once 32 events wait in its queue, its place is free again.
    const deadline = Date.now() + 5000;
    let next: Response | undefined;
    for (;;) {
      next = await handle(new Request("http://127.0.0.1/status/events"));
      if (next?.status === 200 || Date.now() > deadline) break;
      await next?.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(next?.status, 200);
    await next?.body?.cancel();
    assert.match(await stalled!.text(), /^retry: 2000\n\nevent: history/);
  } finally {
    controller.abort();
  }
});

Deno.test("startStatusServer() refuses an address off loopback without token or secret path", () => {
  const sources = { role: "server", listeners: () => [] };
  for (const hostname of ["0.0.0.0", "::", "192.0.2.1"]) {
    assert.throws(
      () => startStatusServer({ hostname, port: 0, sources, version: "t" }),
      (error: Error) =>
        error instanceof ConfigError && /status_token or status_secret_path/.test(error.message),
    );
  }
});

Deno.test("startStatusServer() on 0.0.0.0 needs the token, for the page and the metrics", async () => {
  const status = startStatusServer({
    hostname: "0.0.0.0",
    port: 0,
    token: "tok",
    sources: { role: "server", listeners: () => [] },
    version: "t",
    metrics: () => "shadowsocks_build_info 1\n",
    fallback: () => new Response("fallback", { status: 418 }),
  });
  try {
    const base = `http://127.0.0.1:${status.addr.port}`;
    assert.equal(status.url, `http://0.0.0.0:${status.addr.port}/status/`);
    const call = async (path: string, token?: string) => {
      const response = await fetch(`${base}${path}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        redirect: "manual",
      });
      return { status: response.status, body: await response.text() };
    };
    assert.equal((await call("/status/")).status, 401);
    assert.equal((await call("/status/", "tok")).status, 200);
    assert.equal((await call("/metrics")).status, 401);
    assert.deepEqual(await call("/metrics", "tok"), {
      status: 200,
      body: "shadowsocks_build_info 1\n",
    });
    assert.deepEqual(await call("/users"), { status: 418, body: "fallback" });
    // An open event stream does not hold the shutdown up.
    const events = await fetch(`${base}/status/events`, {
      headers: { authorization: "Bearer tok" },
    });
    const reading = events.text();
    await status.close();
    assert.match(await reading, /event: history/);
  } finally {
    await status.close();
  }
});

Deno.test("startStatusServer() alone sends / to the page", async () => {
  const status = startStatusServer({
    hostname: "127.0.0.1",
    port: 0,
    sources: { role: "server", listeners: () => [] },
    version: "t",
  });
  try {
    const response = await fetch(`http://127.0.0.1:${status.addr.port}/`, { redirect: "manual" });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/status/");
    await response.body?.cancel();
  } finally {
    await status.close();
  }
});
