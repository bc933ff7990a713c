/**
 * server_worker.ts with a slow listener start: tests/service/worker_scaling_test.ts runs its
 * workers from this module so that requests sent right after a start (an update, say) reach the
 * worker while that start is still under way, every time.
 * @module
 */
import { startListener } from "../../server.ts";
import { hostListeners } from "../../service/worker_host.ts";

/** Long against the test's 1 ms poll, short against its timeouts. */
const START_DELAY_MS = 200;

hostListeners(async (config, options) => {
  await new Promise((resolve) => setTimeout(resolve, START_DELAY_MS));
  return await startListener(config, options);
});
