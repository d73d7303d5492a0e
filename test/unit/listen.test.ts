/** A node that cannot listen says why (review "config": every failure read "the port is in use"). */
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { listen } from '../../src/compose/listen.js';
import { loadConfig } from '../../src/config/config.js';
import { loadUws } from '../../src/transport/uws.js';
import { freePort } from '../../load/harness/index.js';

const binding = loadUws({ requireNative: false });

describe('listen', () => {
  it('an address not of this machine is named as such, not as a port in use', async () => {
    const err = await listen(binding.uws.App(), '10.99.99.99', await freePort(), false).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/^cannot listen on 10\.99\.99\.99:\d+: 10\.99\.99\.99 is not an address of this machine \(HOST, ADMIN_HOST\)$/);
  });

  it('a port in use still says so, with the setting that shares it', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const err = await listen(binding.uws.App(), '127.0.0.1', port, false).then(() => null, (e: Error) => e);
      expect(err?.message).toBe(`cannot listen on 127.0.0.1:${port}: the port is in use (bound exclusively: set TIER_REUSE_PORT=1 to share it)`);
    } finally {
      taken.close();
    }
  });
});

describe('HOST and ADMIN_HOST', () => {
  it('take an IP address (IPv6 bracketed or not) or a host name, trimmed', () => {
    expect(loadConfig({ HOST: ' 10.0.0.7 ', ADMIN_HOST: '[::1]' }).config).toMatchObject({ host: '10.0.0.7', adminHost: '::1' });
    expect(loadConfig({ HOST: 'node-1.internal', ADMIN_HOST: 'localhost' }).config).toMatchObject({ host: 'node-1.internal', adminHost: 'localhost' });
    expect(loadConfig({ HOST: 'hub_tier', ADMIN_HOST: 'node-1.example.com.' }).config).toMatchObject({ host: 'hub_tier', adminHost: 'node-1.example.com.' });
  });

  it('refuse at start what binds nowhere, naming the setting', () => {
    for (const [key, value] of [['HOST', ' '], ['HOST', '[x]'], ['ADMIN_HOST', 'a b'], ['HOST', 'host:8080'], ['ADMIN_HOST', '-bad']] as const) {
      expect(() => loadConfig({ [key]: value }), `${key}=${value}`).toThrow(new RegExp(`^${key}: .* is neither an IP address nor a host name$`));
    }
  });
});
