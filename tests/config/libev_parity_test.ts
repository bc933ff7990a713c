/**
 * libev parity, checked against libev itself: every flag `ss-server -h`, `ss-local -h` and
 * `ss-tunnel -h` print is in README's "libev flags and keys" table; each one the table does not
 * call unsupported parses on our command line (with a sample value), and each unsupported one
 * fails with its reason instead of "unknown flag".
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../../config/cli.ts";
import { ConfigError } from "../../config/errors.ts";
import { type PeerName, peerTest } from "../interop/_peers.ts";

const README = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

/** The table's rows: the flags of the first cell, and what the second says. */
function parityRows(): Map<string, string> {
  const start = README.indexOf("## libev flags and keys");
  assert.ok(start >= 0, "README has a libev flags and keys section");
  const section = README.slice(start, README.indexOf("\n## ", start + 1));
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    if (cells.length < 4 || !cells[1]!.startsWith("`")) continue;
    for (const [, flag] of cells[1]!.matchAll(/`(-{1,2}[A-Za-z0-9-]+)`/g)) {
      rows.set(flag!, cells[2]!);
    }
  }
  return rows;
}

/** The flags a libev binary's help lists, with whether each takes a value. */
async function libevFlags(binary: string): Promise<Map<string, boolean>> {
  const { stdout, stderr } = await new Deno.Command(binary, { args: ["-h"] }).output();
  const help = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  const flags = new Map<string, boolean>();
  for (
    const [, flag, value] of help.matchAll(
      /^\s+\[?(-{1,2}[A-Za-z0-9-]+)(?:,\s*-{1,2}[a-z-]+)?\s*(<)?/gm,
    )
  ) {
    flags.set(flag!, value === "<");
  }
  assert.ok(flags.size > 20, `too few flags read from ${binary} -h: ${[...flags.keys()]}`);
  return flags;
}

const SAMPLE_VALUES: Record<string, string> = {
  "-s": "127.0.0.1",
  "-p": "8388",
  "-l": "1080",
  "-k": "password",
  "-m": "aes-256-gcm",
  "-a": "nobody",
  "-f": "/tmp/ss.pid",
  "-t": "60",
  "-c": "config.json",
  "-n": "1024",
  "-b": "127.0.0.1",
  "-d": "1.1.1.1",
  "-L": "1.1.1.1:53",
  "--acl": "rules.acl",
  "--manager-address": "127.0.0.1:6001",
  "--mtu": "1500",
  "--key": "AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8=",
  "--plugin": "obfs-local",
  "--plugin-opts": "obfs=http",
  "-i": "eth0",
};

const ROLES: Array<[PeerName, string]> = [
  ["ss-server", "server"],
  ["ss-local", "local"],
  ["ss-tunnel", "tunnel"],
];

for (const [binary, role] of ROLES) {
  peerTest({
    name: `every flag of libev's ${binary} -h is in README's parity table and parses as it says`,
    peers: [binary],
    async fn(_t, paths) {
      const rows = parityRows();
      const flags = await libevFlags(paths[binary]);
      const missing = [...flags.keys()].filter((flag) => !rows.has(flag));
      assert.deepEqual(missing, [], `libev flags missing from README's table`);
      for (const [flag, takesValue] of flags) {
        if (flag === "-h") continue;
        const value = SAMPLE_VALUES[flag];
        if (takesValue) assert.ok(value !== undefined, `no sample value for ${flag}`);
        const args = [role, flag, ...(takesValue ? [value!] : [])];
        const unsupported = rows.get(flag)!.startsWith("not supported");
        try {
          parseCommandLine(args);
          assert.ok(!unsupported, `${args.join(" ")} parsed, but README says it is not supported`);
        } catch (error) {
          assert.ok(error instanceof ConfigError, String(error));
          if (unsupported) assert.match(error.message, /is not supported: /, flag);
          else assert.fail(`${args.join(" ")}: ${error.message}`);
        }
      }
    },
  });
}
