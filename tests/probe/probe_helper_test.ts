/**
 * The probe helper itself: a probe test is only as good as its report of how the server ended
 * the connection. A reset must come out as an error, not as `{ closedEarly: false, answer: 0 }`.
 */
import { probe } from "../e2e/_harness.ts";
import { waitForSocket } from "../e2e/_tcp_info.ts";
import { assertRejects } from "../_assert.ts";
import assert from "node:assert/strict";

/**
 * A peer in its own process: accepts one connection, answers 5 bytes, never reads. Killing it
 * makes the kernel close the socket with our bytes unread, which is a RST without a FIN first
 * (Deno's own `close()` sends a FIN before the RST, which a reader sees as a clean end).
 */
const RESETTING_PEER = `
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
const conn = await listener.accept();
await conn.write(new TextEncoder().encode("hello"));
setInterval(() => {}, 60_000);
`;

Deno.test("probe() reports a reset after its half-close instead of a quiet close", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", RESETTING_PEER],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const { value } = await lines.read();
    const port = Number(value?.trim());
    assert.ok(port > 0, `the peer printed "${value}"`);
    const probing = probe(port, crypto.getRandomValues(new Uint8Array(300)), 50);
    probing.catch(() => {}); // judged below
    // The probe has half-closed (the peer's socket is in CLOSE-WAIT); now the peer dies.
    await waitForSocket(port, (socket) => socket.state === "CLOSE-WAIT", {
      what: "the probe's half-close",
    });
    child.kill("SIGKILL");
    const error = await assertRejects(() => probing);
    assert.ok(error instanceof Deno.errors.ConnectionReset, `${error}`);
  } finally {
    killIfRunning(child);
    await child.status;
    await lines.cancel();
  }
});

function killIfRunning(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch (error) {
    if (!(error instanceof TypeError)) throw error; // it has already exited
  }
}
