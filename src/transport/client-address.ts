/**
 * Who is calling: the socket's peer, or, when that peer is a proxy the operator trusts
 * (TIER_TRUSTED_PROXIES), the address it vouches for in X-Forwarded-For. Behind an ingress every
 * caller had the ingress's address: the audit trail named it, and ten anonymous wrong admin tokens
 * locked the operator's own out (review "logs"). Read inside uWS's handler: its request is valid
 * only there.
 */
import { BlockList, isIP } from 'node:net';
import { parseProxy } from '../config/proxy.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** an IPv4 address mapped into IPv6: uWS's `0000:…:ffff:7f00:0001`, or `::ffff:7f00:1`, or `::ffff:127.0.0.1` */
const MAPPED_V4 = /^(?:(?:0{1,4}:){5}|::)ffff:(?:([0-9a-f]{1,4}):([0-9a-f]{1,4})|(\d{1,3}(?:\.\d{1,3}){3}))$/i;

export class ClientAddresses {
  private trusted: BlockList | null = null;

  /** `proxies`: addresses and CIDR blocks (`10.0.0.0/8`, `fd00::/8`), checked by `parseProxy`. */
  trust(proxies: readonly string[]): void {
    if (proxies.length === 0) {
      this.trusted = null;
      return;
    }
    const list = new BlockList();
    for (const p of proxies) {
      const { address, prefix, family } = parseProxy(p);
      if (prefix === undefined) list.addAddress(address, family);
      else list.addSubnet(address, prefix, family);
    }
    this.trusted = list;
  }

  /** Whether X-Forwarded-For is read at all (a trusted proxy is configured). */
  get readsForwarded(): boolean {
    return this.trusted !== null;
  }

  /**
   * The caller's address: `peer` unless it is trusted; then the right-most hop of `forwardedFor`
   * that is not trusted (hops a client wrote itself, left of it, are not believed), the left-most
   * when all are; a hop that is not an address stops the walk at the last one believed.
   */
  of(peer: string, forwardedFor: string): string {
    let believed = plain(peer);
    if (this.trusted === null || !this.isTrusted(believed) || forwardedFor === '') return believed;
    const hops = forwardedFor.split(',');
    // a chain of proxies is short: a header of thousands of trusted hops is not walked (review diff9)
    const last = Math.max(0, hops.length - MAX_HOPS);
    for (let i = hops.length - 1; i >= last; i--) {
      const hop = plain(withoutPort(hops[i]!.trim()));
      if (isIP(hop) === 0) return believed;
      believed = hop;
      if (!this.isTrusted(hop)) return hop;
    }
    return believed;
  }

  private isTrusted(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.trusted!.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** One process, one node: set from the config at start (src/compose/server.ts). */
export const clientAddresses = new ClientAddresses();

/** The caller of a uWS request (see ClientAddresses.of). */
export function callerAddress(res: HttpResponse, req: HttpRequest): string {
  return clientAddresses.readsForwarded ? clientAddresses.of(peerAddress(res), forwardedFor(req)) : peerAddress(res);
}

/**
 * Every X-Forwarded-For line of the request, joined in order: a proxy may add a line of its own
 * after the client's (HAProxy's `option forwardfor`), and the first alone, the client's, was
 * believed (review diff9). uWS's getHeader answers the first line only.
 */
function forwardedFor(req: HttpRequest): string {
  let joined = '';
  req.forEach((key, value) => {
    if (key === 'x-forwarded-for') joined = joined === '' ? value : `${joined},${value}`;
  });
  return joined;
}

/** hops of X-Forwarded-For walked at most, from the right */
const MAX_HOPS = 16;

/** `1.2.3.4:5678` and `[2001:db8::1]:5678` (Azure Application Gateway writes the port) as their address. */
function withoutPort(hop: string): string {
  if (hop.startsWith('[')) return hop.slice(1, hop.indexOf(']') < 0 ? undefined : hop.indexOf(']'));
  const colon = hop.indexOf(':');
  return colon > 0 && colon === hop.lastIndexOf(':') ? hop.slice(0, colon) : hop;
}

/** A uWS socket's or response's peer, a v4 one dotted (hubs, the admin port: no proxy is believed there). */
export function peerAddress(socket: { getRemoteAddressAsText(): ArrayBuffer }): string {
  return plain(Buffer.from(socket.getRemoteAddressAsText()).toString());
}

/**
 * An IPv4 address mapped into IPv6 (uWS writes a v4 peer of its dual-stack socket as
 * `0000:0000:0000:0000:0000:ffff:7f00:0001`) in its dotted form; anything else as it is.
 */
function plain(address: string): string {
  // one regular expression per request, no parse: this runs for every API request
  const m = MAPPED_V4.exec(address);
  if (m === null) return address;
  if (m[3] !== undefined) return m[3];
  const [hi, lo] = [parseInt(m[1]!, 16), parseInt(m[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
