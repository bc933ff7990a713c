/**
 * Callbacks run when a signal aborts, kept in one `Set` per signal behind a single listener.
 * Every session ties something to its service's long-lived shutdown signal (the relay's "close
 * both sides", a handshake's connect); an `addEventListener` each costs a listener record in
 * the signal and the time to add and remove it, a `Set` entry much less (bench/throughput.ts,
 * idle memory and connection setup).
 *
 * As with `addEventListener(…, { once: true })`: a callback added to a signal that has already
 * aborted never runs, each runs at most once, and one that throws is reported (`reportError`)
 * without stopping the others.
 * @module
 */

const callbacks = new WeakMap<AbortSignal, Set<() => void>>();

/** Runs `callback` when `signal` aborts, unless `offAbort` removes it first. */
export function onAbort(signal: AbortSignal, callback: () => void): void {
  let set = callbacks.get(signal);
  if (set === undefined) {
    const created = new Set<() => void>();
    callbacks.set(signal, created);
    signal.addEventListener("abort", () => {
      const pending = [...created];
      created.clear();
      for (const run of pending) {
        try {
          run();
        } catch (error) {
          reportError(error);
        }
      }
    }, { once: true });
    set = created;
  }
  set.add(callback);
}

/** Removes `callback` from `signal`'s callbacks; one never added (or already run) is ignored. */
export function offAbort(signal: AbortSignal, callback: () => void): void {
  callbacks.get(signal)?.delete(callback);
}
