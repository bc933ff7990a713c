/**
 * The HTTP fixture and UDP echo on the test host (`../_target_host.ts`), for peers that refuse
 * loopback targets. The fixtures run in a Deno process inside the host's namespace, started and
 * ended here by its PID.
 * @module
 */
import type { Address } from "../../protocol/address.ts";
import { ensureTargetHost, targetHostCommand } from "../_target_host.ts";
import type { TransferTarget } from "./_checks.ts";

const SCRIPT = new URL("./_target_server.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

export interface RemoteTarget extends AsyncDisposable {
  /** The HTTP fixture, by the host's address (it has no name). */
  readonly http: TransferTarget;
  /** The UDP echo. */
  readonly udp: Address;
}

/** Starts the fixtures on the test host; throws with the reason when the host cannot be had. */
export async function startRemoteTarget(): Promise<RemoteTarget> {
  const host = await ensureTargetHost();
  if (!host.ok) throw new Error(`No test host: ${host.reason}`);
  const child = targetHostCommand(
    Deno.execPath(),
    ["run", "-A", "--quiet", "--config", CONFIG, SCRIPT],
    { stdin: "null", stdout: "piped", stderr: "inherit" },
  ).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("The test host's fixtures exited before they listened");
      text += value;
    }
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    await lines.cancel();
    throw error;
  }
  const ports = JSON.parse(text.split("\n")[0]!) as { http: number; udp: number };
  const address = host.address;
  return {
    http: { url: (path, name = address) => `http://${name}:${ports.http}${path}` },
    udp: { type: "ipv4", host: address, port: ports.udp },
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await lines.cancel();
    },
  };
}
