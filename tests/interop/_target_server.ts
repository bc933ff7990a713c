/**
 * The fixtures of the test host (see `../_target_host.ts`), run inside its namespace by
 * `startRemoteTarget`: the HTTP fixture (`/blob`, `/echo`) and a UDP echo on 0.0.0.0. Prints
 * one JSON line `{"http": PORT, "udp": PORT}` and serves until SIGTERM.
 * @module
 */
import { startHttpFixture } from "../_fixtures.ts";
import { UdpEcho } from "../e2e/_udp_harness.ts";

const http = startHttpFixture("0.0.0.0");
const echo = new UdpEcho({ hostname: "0.0.0.0" });
const stop = async () => {
  await http.close();
  await echo.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
console.log(JSON.stringify({ http: http.addr.port, udp: echo.port }));
