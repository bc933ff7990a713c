/**
 * The server role in a worker isolate: service/workers.ts starts this module once per extra
 * core, and it serves the listeners the main isolate asks for with server.ts's `startListener`
 * (TCP only: the main isolate keeps UDP and plugin ports).
 * @module
 */
import { startListener } from "./server.ts";
import { hostListeners } from "./service/worker_host.ts";

hostListeners((config, options) => startListener(config, options));
