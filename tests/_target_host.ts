/**
 * A test host of our own in a network namespace, for peers that refuse loopback and private
 * targets with no way to allow them (outline-ss-server accepts only global unicast, non-private
 * destinations). The namespace `ssdeno-target` is joined to this one by a veth pair:
 *
 * ```
 *   this namespace  ssdeno-h0 198.18.0.1/30 ══ veth ══ ssdeno-t0 198.18.0.2/30  namespace ssdeno-target
 * ```
 *
 * 198.18.0.0/15 is the range set aside for benchmarking network devices (RFC 2544): global
 * unicast to Go's checks and not private, so Outline dials it, yet routed here only over the
 * veth. Before anything is sent there, the route to the host is checked to go through the veth,
 * so no packet can leave the machine if the setup is incomplete. Creating it needs root and
 * `ip` (Debian's iproute2); it is made once and kept (idempotent), like a fixture machine.
 * @module
 */

export const TARGET_NAMESPACE = "ssdeno-target";
/** The test host's address, inside the namespace. */
export const TARGET_ADDRESS = "198.18.0.2";
const HOST_ADDRESS = "198.18.0.1";
const HOST_LINK = "ssdeno-h0";
const TARGET_LINK = "ssdeno-t0";

/** The namespace, ready, or the reason it cannot be had here. */
export type TargetHost = { ok: true; address: string } | { ok: false; reason: string };

async function ip(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { code, stdout, stderr } = await new Deno.Command("ip", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return { code, out: decoder.decode(stdout) + decoder.decode(stderr) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { code: 127, out: "ip: not found" };
    throw error;
  }
}

/** True when packets for the test host go out through our veth and nowhere else. */
async function routedOverVeth(): Promise<boolean> {
  const { code, out } = await ip(["-4", "route", "get", TARGET_ADDRESS]);
  return code === 0 && new RegExp(`\\bdev ${HOST_LINK}\\b`).test(out);
}

let ready: Promise<TargetHost> | undefined;

/** Makes (once per process, and once per machine) the namespace and its veth; see above. */
export function ensureTargetHost(): Promise<TargetHost> {
  return ready ??= (async (): Promise<TargetHost> => {
    if (await routedOverVeth()) return { ok: true, address: TARGET_ADDRESS };
    const steps = [
      ["netns", "add", TARGET_NAMESPACE],
      ["link", "add", HOST_LINK, "type", "veth", "peer", "name", TARGET_LINK],
      ["link", "set", TARGET_LINK, "netns", TARGET_NAMESPACE],
      ["addr", "add", `${HOST_ADDRESS}/30`, "dev", HOST_LINK],
      ["link", "set", HOST_LINK, "up"],
      ["-n", TARGET_NAMESPACE, "addr", "add", `${TARGET_ADDRESS}/30`, "dev", TARGET_LINK],
      ["-n", TARGET_NAMESPACE, "link", "set", TARGET_LINK, "up"],
      ["-n", TARGET_NAMESPACE, "link", "set", "lo", "up"],
    ];
    for (const step of steps) {
      const { code, out } = await ip(step);
      // A step already done by an earlier, interrupted setup says "File exists": go on.
      if (code !== 0 && !/File exists/.test(out)) {
        return { ok: false, reason: `\`ip ${step.join(" ")}\` failed: ${out.trim()}` };
      }
    }
    if (!(await routedOverVeth())) {
      return { ok: false, reason: `no route to ${TARGET_ADDRESS} over ${HOST_LINK}` };
    }
    return { ok: true, address: TARGET_ADDRESS };
  })();
}

/** `command args…` run inside the test host's namespace. */
export function targetHostCommand(
  command: string,
  args: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.Command {
  return new Deno.Command("ip", {
    ...options,
    args: ["netns", "exec", TARGET_NAMESPACE, command, ...args],
  });
}
