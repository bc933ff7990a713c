/**
 * The SIP003 plugin lifecycle with stand-in plugins (shell scripts): the SS_* variables, the
 * output in our log, restarts with backoff until the budget is spent, and no orphan on close.
 */
import assert from "node:assert/strict";
import { createLogger } from "../../relay/log.ts";
import { startPlugin } from "../../service/plugin.ts";
import { waitFor } from "../e2e/_harness.ts";

const ADDRESSES = { remoteHost: "0.0.0.0", remotePort: 8388, localHost: "127.0.0.1", localPort: 9 };

async function script(body: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "ssdeno-plugin-", suffix: ".sh" });
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

function isAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("a plugin that keeps exiting is restarted with backoff, then given up loudly", async () => {
  const path = await script(
    'echo "env $SS_REMOTE_HOST:$SS_REMOTE_PORT $SS_LOCAL_HOST:$SS_LOCAL_PORT [$SS_PLUGIN_OPTIONS]"; exit 3',
  );
  const lines: string[] = [];
  try {
    const plugin = startPlugin(
      { name: path, options: "obfs=http" },
      ADDRESSES,
      createLogger("info", (line) => lines.push(line)),
      { firstRestartDelayMs: 10 },
    );
    await plugin.failed;
    const started = lines.filter((line) =>
      line.includes("env 0.0.0.0:8388 127.0.0.1:9 [obfs=http]")
    );
    assert.equal(started.length, 5, lines.join("\n"));
    assert.equal(lines.filter((line) => line.includes("starting it again")).length, 4);
    assert.ok(lines.some((line) => line.includes("ERROR") && line.includes("giving up")));
    await plugin.close();
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("closing ends the plugin process: no orphan", async () => {
  const path = await script("echo ready; exec sleep 300");
  const lines: string[] = [];
  try {
    const plugin = startPlugin(
      { name: path },
      ADDRESSES,
      createLogger("info", (line) => lines.push(line)),
    );
    await waitFor(() => lines.some((line) => line.endsWith(": ready")), 5000, "the plugin");
    const pid = plugin.pid!;
    assert.equal(isAlive(pid), true);
    await plugin.close();
    assert.equal(isAlive(pid), false, "the plugin outlived its owner");
  } finally {
    await Deno.remove(path);
  }
});
