/**
 * Numbers in the configuration are decimal integers as written: `Number()` alone reads "0x1F90"
 * as 8080, "1e3" as 1000 and "0b1" as 1, so a typo or a templating slip started a node on a port
 * nobody asked for. And the two listening ports must differ (the second listen failed with a stack).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { refusal } from '../helpers/config-refusal.js';

describe('integers in the environment', () => {
  it.each(['0x1F90', '1e3', '0b1', '0o17', '8080.0', '80 80', '+', '-', '٣'])('PORT=%j is refused, naming the variable and the value', (raw) => {
    expect(refusal({ PORT: raw }).message).toBe(`PORT: expected an integer in 0..65535, got ${JSON.stringify(raw)}`);
  });

  it('decimal integers are read, with surrounding blanks and a sign', () => {
    expect(loadConfig({ PORT: ' 8081 ', ADMIN_PORT: '+9091' }).config).toMatchObject({ port: 8081, adminPort: 9091 });
  });

  it.each(['0x0', '5e-1', '0x1', '.5e0', 'Infinity', '1.5'])('a fraction %j is refused: decimal as written (TIER_SHED_MEMORY=0x0 had turned shedding off)', (raw) => {
    expect(refusal({ TIER_SHED_MEMORY: raw }).message).toBe(`TIER_SHED_MEMORY: expected a number in 0..1, got ${JSON.stringify(raw)}`);
  });

  it('decimal fractions are read', () => {
    for (const [raw, n] of [['0.25', 0.25], ['.5', 0.5], ['1', 1], [' 0 ', 0], ['1.', 1]] as const) expect(loadConfig({ TIER_TRACE_RATIO: raw }).config.traceRatio).toBe(n);
  });

  it('a setting of another range says its own', () => {
    expect(refusal({ TIER_HEARTBEAT_MS: '3e4' }).message).toBe('TIER_HEARTBEAT_MS: expected an integer in 1000..600000, got "3e4"');
  });
});

describe('the two ports', () => {
  it('PORT and ADMIN_PORT the same on hosts that overlap is refused before anything listens', () => {
    expect(refusal({ PORT: '8080', ADMIN_PORT: '8080' }).message).toBe(
      'PORT and ADMIN_PORT: both 8080 on HOST 0.0.0.0 and ADMIN_HOST 127.0.0.1, which overlap; the admin port (metrics, readiness, the admin API) needs a port of its own',
    );
    expect(refusal({ PORT: '9000', ADMIN_PORT: '9000', HOST: '10.1.2.3', ADMIN_HOST: '10.1.2.3' }).message).toMatch(/^PORT and ADMIN_PORT: both 9000 on HOST 10\.1\.2\.3 and ADMIN_HOST 10\.1\.2\.3/);
    expect(refusal({ PORT: '9000', ADMIN_PORT: '9000', HOST: '10.1.2.3', ADMIN_HOST: '::' }).message).toMatch(/^PORT and ADMIN_PORT: both 9000/);
    // one address written two ways (the node had failed on the port, with a stack)
    for (const [host, admin] of [['localhost', '127.0.0.1'], ['::ffff:127.0.0.1', '127.0.0.1'], ['[::FFFF:127.0.0.1]', 'LOCALHOST'], ['hub.example', '10.1.2.3']]) {
      expect(refusal({ PORT: '9000', ADMIN_PORT: '9000', HOST: host!, ADMIN_HOST: admin! }).message, `${host} ${admin}`).toMatch(/^PORT and ADMIN_PORT: both 9000/);
    }
  });

  it('one port on two distinct addresses is accepted (each listener binds its own)', () => {
    expect(loadConfig({ PORT: '9000', ADMIN_PORT: '9000', HOST: '10.1.2.3', ADMIN_HOST: '127.0.0.1' }).config).toMatchObject({ port: 9000, adminPort: 9000 });
  });

  it('both 0 (each a free port the kernel picks) is accepted', () => {
    expect(loadConfig({ PORT: '0', ADMIN_PORT: '0' }).config).toMatchObject({ port: 0, adminPort: 0 });
  });
});
