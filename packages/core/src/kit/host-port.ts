/** A TCP or UDP port number: an integer from 1 to 65535 (untrusted input welcome). */
export const isPort = (port: unknown): port is number =>
  typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;

/** Inverse of `formatHostPort`: `10.0.0.5:80`, `[fd00::1]:53` or `host.example:8080`; undefined otherwise. */
export function parseHostPort(value: string): { address: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  const address = match?.[1] ?? match?.[2];
  return address !== undefined && isPort(port) ? { address, port } : undefined;
}
