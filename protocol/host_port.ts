/**
 * `host:port` text as users write it on the command line and in config files (`-L`,
 * `tunnel_address`): a name or IPv4 literal, or an IPv6 literal in brackets, then a port.
 * @module
 */
import { type Address, addressFromHost } from "./address.ts";

/**
 * Parses `host:port` (`example.com:53`, `1.1.1.1:53`, `[2606:4700::1111]:53`) into an address.
 * Throws `RangeError` naming the text when the host is empty, an IPv6 literal lacks brackets,
 * or the port is not an integer from 1 to 65535.
 */
export function parseHostPort(text: string): Address {
  const colon = text.lastIndexOf(":");
  if (colon < 0) throw new RangeError(`Invalid address "${text}": expected host:port`);
  const host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host === "" || host === "[]") {
    throw new RangeError(`Invalid address "${text}": the host is empty`);
  }
  if (host.includes(":") && !(host.startsWith("[") && host.endsWith("]"))) {
    throw new RangeError(`Invalid address "${text}": put an IPv6 address in brackets, [::1]:53`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new RangeError(`Invalid address "${text}": the port must be 1 to 65535`);
  }
  const address = addressFromHost(host, Number(portText));
  if (host.startsWith("[") && address.type !== "ipv6") {
    throw new RangeError(`Invalid address "${text}": brackets must hold an IPv6 address`);
  }
  return address;
}
