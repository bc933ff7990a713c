/**
 * What the kernel knows about loopback TCP sockets, through `ss -tinaH` (iproute2): state,
 * unread bytes and segment counts. Tests wait on these instead of sleeping: "the peer has read
 * every byte" is `recvQ === 0` on its socket, "sent in one write" is `dataSegsIn === 1`.
 * (Deno wants --allow-all to read /proc/net/tcp itself; `ss` needs only --allow-run.)
 * @module
 */

/** One socket as `ss -tin` shows it. */
export interface TcpSocketInfo {
  /** `ss`'s state name: ESTAB, CLOSE-WAIT, FIN-WAIT-2, ... */
  state: string;
  /** Bytes received and not yet read (the FIN counts one once it is in). */
  recvQ: number;
  /** Bytes written and not yet acknowledged. */
  sendQ: number;
  localPort: number;
  peerPort: number;
  bytesReceived: number;
  /** Segments that carried data, received and sent. */
  dataSegsIn: number;
  dataSegsOut: number;
}

/** The connected sockets whose local port is `localPort` (and peer port, when given). */
export async function tcpSockets(
  localPort: number,
  options: { peerPort?: number } = {},
): Promise<TcpSocketInfo[]> {
  const filter = options.peerPort === undefined
    ? `( sport = :${localPort} )`
    : `( sport = :${localPort} and dport = :${options.peerPort} )`;
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("ss", { args: ["-tinaH", filter], stdin: "null" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error('Missing "ss" on PATH: install with apt-get install -y iproute2');
    }
    throw error;
  }
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) throw new Error(`ss failed: ${new TextDecoder().decode(output.stderr)}`);
  const sockets: TcpSocketInfo[] = [];
  // Each socket is a line of columns followed by an indented line of details.
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const columns = lines[i]!.trim().split(/\s+/);
    if (columns.length < 5 || lines[i]!.startsWith("\t") || columns[0] === "LISTEN") continue;
    const details = lines[i + 1]?.startsWith("\t") ? lines[i + 1]! : "";
    const counter = (name: string) =>
      Number(new RegExp(`\\b${name}:(\\d+)`).exec(details)?.[1] ?? 0);
    sockets.push({
      state: columns[0]!,
      recvQ: Number(columns[1]),
      sendQ: Number(columns[2]),
      localPort: Number(columns[3]!.slice(columns[3]!.lastIndexOf(":") + 1)),
      peerPort: Number(columns[4]!.slice(columns[4]!.lastIndexOf(":") + 1)),
      bytesReceived: counter("bytes_received"),
      dataSegsIn: counter("data_segs_in"),
      dataSegsOut: counter("data_segs_out"),
    });
  }
  return sockets;
}

/**
 * Polls `tcpSockets(localPort, options)` every 5 ms until `condition` holds for one of them;
 * returns it. Throws after `timeoutMs` with the last sockets seen.
 */
export async function waitForSocket(
  localPort: number,
  condition: (socket: TcpSocketInfo) => boolean,
  options: { peerPort?: number; timeoutMs?: number; what?: string } = {},
): Promise<TcpSocketInfo> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const until = performance.now() + timeoutMs;
  for (;;) {
    const sockets = await tcpSockets(localPort, options);
    const found = sockets.find(condition);
    if (found) return found;
    if (performance.now() > until) {
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${
          options.what ?? "a socket"
        } on port ${localPort}: ${JSON.stringify(sockets)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
