/** TIER_TRUSTED_PROXIES' entries, checked at start and read by src/transport/client-address.ts. */
import { isIP } from 'node:net';

/** `1.2.3.4`, `fd00::1`, `10.0.0.0/8` or `fd00::/8`; throws a TypeError naming what is wrong. */
export function parseProxy(text: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } {
  const [address = '', bits, ...more] = text.trim().split('/');
  const family = isIP(address);
  if (family === 0 || more.length > 0) throw new TypeError(`"${text}" is not an address or a CIDR block (10.0.0.0/8, fd00::/8)`);
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) throw new TypeError(`"${text}": the prefix must be 0..${max}`);
  return { address, prefix: bits === undefined ? undefined : Number(bits), family: family === 4 ? 'ipv4' : 'ipv6' };
}
