/**
 * What Deno does not offer about the process itself, through libc (FFI, Linux/glibc): raising
 * the file limit (`setrlimit`) and giving up root after binding (`getpwnam`, `setgroups`,
 * `setgid`, `setuid`), as shadowsocks-libev's `-n` and `-a` do. Each call opens libc for its
 * own duration; all of them run once at start.
 * @module
 */
import { type FileLimit, readFileLimit } from "./file_limit.ts";

const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

const SYMBOLS = {
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  getpwnam: { parameters: ["buffer"], result: "pointer" },
  getgrouplist: { parameters: ["buffer", "u32", "buffer", "buffer"], result: "i32" },
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  setgid: { parameters: ["u32"], result: "i32" },
  setuid: { parameters: ["u32"], result: "i32" },
  getuid: { parameters: [], result: "u32" },
  geteuid: { parameters: [], result: "u32" },
  getgid: { parameters: [], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

function withLibc<T>(use: (libc: Libc["symbols"]) => T): T {
  if (Deno.build.os !== "linux") throw new Error("only supported on Linux");
  const libc = Deno.dlopen("libc.so.6", SYMBOLS);
  try {
    return use(libc.symbols);
  } finally {
    libc.close();
  }
}

function errno(libc: Libc["symbols"]): number {
  const pointer = libc.__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

/**
 * Sets the soft file limit to `wanted` (default: the hard limit), never above the hard limit
 * unless running as root (then the hard limit rises too). Returns the limit before and after.
 */
export function raiseFileLimit(wanted?: number): { before: FileLimit; after: FileLimit } {
  const before = readFileLimit();
  if (!before) throw new Error("the file limit cannot be read");
  return withLibc((libc) => {
    const root = libc.geteuid() === 0;
    const target = wanted ?? before.hard;
    if (!root && target > before.hard) {
      throw new Error(
        `${target} is above the hard limit ${before.hard}, which only root can raise`,
      );
    }
    const hard = target > before.hard ? target : before.hard;
    const limits = new BigUint64Array([
      target === Infinity ? RLIM_INFINITY : BigInt(target),
      hard === Infinity ? RLIM_INFINITY : BigInt(hard),
    ]);
    if (libc.setrlimit(RLIMIT_NOFILE, new Uint8Array(limits.buffer)) !== 0) {
      throw new Error(`setrlimit failed (errno ${errno(libc)})`);
    }
    return { before, after: readFileLimit() ?? { soft: target, hard } };
  });
}

/** A user's IDs from the system's user database. */
export interface UserIds {
  name: string;
  uid: number;
  gid: number;
}

/** Looks `name` up (getpwnam); undefined when there is no such user. */
export function lookupUser(name: string): UserIds | undefined {
  return withLibc((libc) => {
    const pointer = libc.getpwnam(cString(name));
    if (!pointer) return undefined;
    // struct passwd on 64-bit glibc: two pointers (name, passwd), then uid_t and gid_t.
    const view = new Deno.UnsafePointerView(pointer);
    return { name, uid: view.getUint32(16), gid: view.getUint32(20) };
  });
}

/**
 * Becomes `name` for good: its supplementary groups, then its group, then its user, in that
 * order (after setuid the others would be refused). Throws when not possible (not root, no such
 * user); already being that user is fine.
 */
export function dropPrivileges(name: string): UserIds {
  const user = lookupUser(name);
  if (!user) throw new Error(`no user "${name}" on this system`);
  withLibc((libc) => {
    if (libc.getuid() === user.uid && libc.geteuid() === user.uid) return;
    if (libc.geteuid() !== 0) {
      throw new Error(
        `switching to "${name}" needs root; this process runs as uid ${libc.geteuid()}`,
      );
    }
    const groups = groupsOf(libc, name, user.gid);
    const call = (what: string, result: number) => {
      if (result !== 0) throw new Error(`${what} failed (errno ${errno(libc)})`);
    };
    call("setgroups", libc.setgroups(BigInt(groups.length), new Uint8Array(groups.buffer)));
    call("setgid", libc.setgid(user.gid));
    call("setuid", libc.setuid(user.uid));
    if (libc.getuid() !== user.uid || libc.geteuid() !== user.uid || libc.getgid() !== user.gid) {
      throw new Error("the switch did not take effect");
    }
  });
  return user;
}

/** The user's supplementary groups (getgrouplist), its primary group included. */
function groupsOf(libc: Libc["symbols"], name: string, gid: number): Uint32Array {
  let groups = new Uint32Array(64);
  const count = new Int32Array([groups.length]);
  if (
    libc.getgrouplist(
      cString(name),
      gid,
      new Uint8Array(groups.buffer),
      new Uint8Array(count.buffer),
    ) < 0
  ) {
    groups = new Uint32Array(count[0]!);
    libc.getgrouplist(
      cString(name),
      gid,
      new Uint8Array(groups.buffer),
      new Uint8Array(count.buffer),
    );
  }
  return groups.slice(0, count[0]!);
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}
