/**
 * The caller's address behind proxies the operator trusts (TIER_TRUSTED_PROXIES): X-Forwarded-For
 * is believed only from a trusted peer, and only from the right: hops a client wrote itself are not.
 */
import { describe, expect, it } from 'vitest';
import { ClientAddresses } from '../../src/transport/client-address.js';
import { parseProxy } from '../../src/config/proxy.js';
import { loadConfig } from '../../src/config/config.js';

describe('ClientAddresses', () => {
  const behind = new ClientAddresses();
  behind.trust(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);

  it('without trusted proxies, the peer, whatever the header says', () => {
    const none = new ClientAddresses();
    expect(none.readsForwarded).toBe(false);
    expect(none.of('198.51.100.9', '203.0.113.7')).toBe('198.51.100.9');
  });

  it('from a trusted peer, the right-most hop that is not trusted; hops left of it are the client’s own writing', () => {
    expect(behind.of('10.1.2.3', '203.0.113.7')).toBe('203.0.113.7');
    // a client that sends its own X-Forwarded-For: the ingress appends the real address
    expect(behind.of('10.1.2.3', '6.6.6.6, 203.0.113.7')).toBe('203.0.113.7');
    // two trusted proxies in a row
    expect(behind.of('127.0.0.1', '203.0.113.7, 10.9.9.9')).toBe('203.0.113.7');
    expect(behind.of('fd00::2', '2001:db8::5')).toBe('2001:db8::5');
    // all trusted: the left-most
    expect(behind.of('10.1.2.3', '10.0.0.5, 10.0.0.6')).toBe('10.0.0.5');
  });

  it('an untrusted peer is the caller, even with the header; garbage stops the walk at the last hop believed', () => {
    expect(behind.of('198.51.100.9', '10.1.1.1')).toBe('198.51.100.9');
    expect(behind.of('10.1.2.3', 'unknown')).toBe('10.1.2.3');
    expect(behind.of('10.1.2.3', '203.0.113.7, <script>')).toBe('10.1.2.3');
    expect(behind.of('10.1.2.3', '')).toBe('10.1.2.3');
    // a v4 peer as uWS may write it on a dual-stack socket
    expect(behind.of('0000:0000:0000:0000:0000:ffff:0a01:0203', '203.0.113.7')).toBe('203.0.113.7');
    expect(behind.of('0000:0000:0000:0000:0000:ffff:c633:6409', '')).toBe('198.51.100.9');
    expect(behind.of('::ffff:198.51.100.9', '203.0.113.7')).toBe('198.51.100.9');
  });

  it('reads hops with a port (Azure Application Gateway), bracketed v6 hops, and walks at most 16 hops (review diff9)', () => {
    expect(behind.of('10.1.2.3', '203.0.113.7:51234')).toBe('203.0.113.7');
    expect(behind.of('10.1.2.3', '[2001:db8::5]:443, 10.0.0.9:80')).toBe('2001:db8::5');
    expect(behind.of('10.1.2.3', '[2001:db8::5]')).toBe('2001:db8::5');
    // a header of thousands of trusted hops: the 16 nearest walked, the last of them believed
    const many = ['203.0.113.7', ...Array.from({ length: 5_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`)].join(',');
    expect(behind.of('10.1.2.3', many)).toBe(`10.0.19.120`);
  });
});

describe('TIER_TRUSTED_PROXIES', () => {
  it('takes addresses and CIDR blocks, comma-separated; refuses anything else, naming it', () => {
    expect(loadConfig({ DATA_DIR: ':memory:', TIER_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.7,fd00::/8' }).config.trustedProxies).toEqual(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
    expect(loadConfig({ DATA_DIR: ':memory:' }).config.trustedProxies).toEqual([]);
    expect(() => loadConfig({ DATA_DIR: ':memory:', TIER_TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(/^TIER_TRUSTED_PROXIES\[0\]: "10.0.0.0\/33": the prefix must be 0..32/);
    expect(() => loadConfig({ DATA_DIR: ':memory:', TIER_TRUSTED_PROXIES: '10.0.0.0/8,ingress.local' })).toThrow(/^TIER_TRUSTED_PROXIES\[1\]: "ingress.local" is not an address or a CIDR block/);
    expect(() => parseProxy('10.0.0.0/8/1')).toThrow(/not an address or a CIDR block/);
    expect(parseProxy('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
  });
});
