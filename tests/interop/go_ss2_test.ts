/**
 * Interop with go-shadowsocks2, the Go implementation many clients grew from: its client →
 * ssdeno server and ssdeno local → its server, for the three AEAD-2017 methods (it has no
 * others), TCP and UDP. The paths and checks are in `_scenarios.ts`. Each test takes about 5 s:
 * once one direction of a relay ends, go-shadowsocks2 keeps the other open for 5 s before it
 * closes, and the HTTP fixture waits for its connections when it shuts down.
 * @module
 */
import { startGoSs2Client, startGoSs2Server } from "./_go_peers.ts";
import { peerTest } from "./_peers.ts";
import { passwordFor, peerLocalToSsdeno, ssdenoToPeerServer, UDP_SIZES } from "./_scenarios.ts";

const METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;

for (const method of METHODS) {
  peerTest({
    name: `a go-shadowsocks2 client carries TCP and UDP through the ssdeno server with ${method}`,
    peers: ["go-shadowsocks2", "curl"],
    async fn() {
      const password = passwordFor(method);
      await peerLocalToSsdeno(
        method,
        { password },
        (port) => startGoSs2Client(port, { method, password }),
        UDP_SIZES,
      );
    },
  });

  peerTest({
    name: `the ssdeno local carries TCP and UDP through a go-shadowsocks2 server with ${method}`,
    peers: ["go-shadowsocks2", "curl"],
    async fn() {
      const password = passwordFor(method);
      await using server = await startGoSs2Server({ method, password });
      await ssdenoToPeerServer(method, { password }, server);
    },
  });
}
