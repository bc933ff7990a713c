/**
 * The process around the services, as shadowsocks-libev runs it: the file limit raised before
 * anything is bound (`-n`, default: soft up to hard), then, once every port is bound, the PID
 * file written (`-f`) and root given up (`-a`). The PID file is removed at exit.
 * @module
 */
import type { ProcessSettings } from "../config/load.ts";
import { ConfigError } from "../config/errors.ts";
import { errorMessage } from "../protocol/errors.ts";
import type { Logger } from "../relay/log.ts";
import { useResolver } from "../relay/direct.ts";
import { Resolver } from "../relay/resolver.ts";
import { addressFromHost, formatAddress } from "../protocol/address.ts";
import { dropPrivileges, lookupUser, raiseFileLimit } from "../relay/process_control.ts";

/**
 * Before binding: checks that the user exists (a typo should fail before anything runs) and
 * raises the file limit. A limit that cannot be raised is a warning unless `-n` asked for it.
 */
export function prepareProcess(settings: ProcessSettings, logger: Logger): void {
  if (settings.nameservers) {
    useResolver(new Resolver({ servers: settings.nameservers }));
    const list = settings.nameservers.map((s) => formatAddress(addressFromHost(s.host, s.port)));
    logger.info(`target names resolved by ${list.join(", ")} (cached)`);
  }
  if (settings.user !== undefined && lookupUser(settings.user) === undefined) {
    throw new ConfigError(`Invalid user "${settings.user}": no such user on this system`);
  }
  try {
    const { before, after } = raiseFileLimit(settings.nofile);
    if (after.soft !== before.soft) {
      logger.info(`file limit raised from ${before.soft} to ${after.soft}`);
    }
  } catch (error) {
    const reason = `file limit not changed: ${errorMessage(error)}`;
    if (settings.nofile !== undefined) throw new ConfigError(`Invalid nofile: ${reason}`);
    logger.debug(reason);
  }
}

/**
 * Once every port is bound: writes the PID file, then switches user. Returns what to do at
 * exit. Failing to switch is fatal: running as root when asked not to is worse than not running.
 */
export async function processStarted(
  settings: ProcessSettings,
  logger: Logger,
): Promise<() => Promise<void>> {
  const pidFile = settings.pidFile;
  if (pidFile !== undefined) {
    await Deno.writeTextFile(pidFile, `${Deno.pid}\n`);
  }
  if (settings.user !== undefined) {
    try {
      const user = dropPrivileges(settings.user);
      logger.info(`running as ${user.name} (uid ${user.uid}, gid ${user.gid})`);
    } catch (error) {
      if (pidFile !== undefined) await Deno.remove(pidFile).catch(() => {});
      throw new Error(`Cannot run as "${settings.user}": ${errorMessage(error)}`);
    }
  }
  return async () => {
    if (pidFile === undefined) return;
    try {
      // Only our own file: another instance may have taken the path since.
      if ((await Deno.readTextFile(pidFile)).trim() === String(Deno.pid)) {
        await Deno.remove(pidFile);
      }
    } catch (error) {
      logger.warn(`pid file ${pidFile} not removed: ${errorMessage(error)}`);
    }
  };
}
