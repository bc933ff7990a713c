/**
 * Runs the soak tests in long mode (`SSDENO_SOAK=long`): one file after the other, since they
 * would compete for the CPU and the file limit, each under `ulimit -n` raised to the hard limit
 * (the sessions test holds one descriptor per session in this process). Their output passes
 * through; the `soak ...` figures lines are repeated at the end. Exits 1 if any file failed.
 *
 * ```sh
 * deno task soak                      # all three
 * deno task soak slowloris_test.ts    # some of them
 * ```
 * @module
 */
const FILES = ["sessions_test.ts", "slowloris_test.ts", "sigterm_download_test.ts"];
const HERE = new URL(".", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
/** The permissions of `deno task test`. */
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
];

const chosen = Deno.args.length > 0 ? Deno.args : FILES;
const figures: string[] = [];
const failed: string[] = [];
for (const file of chosen) {
  if (!FILES.includes(file)) {
    console.error(`Unknown soak file "${file}": expected one of ${FILES.join(", ")}`);
    Deno.exit(2);
  }
  console.log(`\n=== ${file} (SSDENO_SOAK=long)`);
  const started = performance.now();
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'ulimit -n "$(ulimit -Hn)" && exec "$@"',
      "bash",
      Deno.execPath(),
      "test",
      ...PERMISSIONS,
      "--config",
      CONFIG,
      `${HERE}${file}`,
    ],
    env: { SSDENO_SOAK: "long" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let pending = "";
  const encoder = new TextEncoder();
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    await Deno.stdout.write(encoder.encode(text));
    pending += text;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    figures.push(...lines.filter((line) => /^soak [^:]+: /.test(line)));
  }
  const { code } = await child.status;
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(`=== ${file}: ${code === 0 ? "passed" : `FAILED (exit ${code})`} in ${seconds} s`);
  if (code !== 0) failed.push(file);
}

console.log("\n=== Figures");
for (const line of figures) console.log(line);
if (failed.length > 0) {
  console.log(`\nFailed: ${failed.join(", ")}`);
  Deno.exit(1);
}
