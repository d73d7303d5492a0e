/** Settings the node does not know (ignored with a warning that names what was likely meant), and settings that do not fit together. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { closestName } from '../../src/config/closest-name.js';

describe('unknown settings', () => {
  it('an unknown TIER_ variable is ignored, with the setting it is closest to', () => {
    const { warnings, config } = loadConfig({ TIER_HEARTBEAT: '1000', TIER_HEARTBEAT_MSS: '2000', TIER_HEATRBEAT_MS: '3000', TIER_SOMETHING_ELSE_ENTIRELY: '1' });
    expect(config.heartbeatMs).toBe(30_000);
    expect(warnings).toContain('environment: unknown variable TIER_HEARTBEAT ignored (did you mean TIER_HEARTBEAT_MS?)');
    expect(warnings).toContain('environment: unknown variable TIER_HEARTBEAT_MSS ignored (did you mean TIER_HEARTBEAT_MS?)');
    expect(warnings).toContain('environment: unknown variable TIER_HEATRBEAT_MS ignored (did you mean TIER_HEARTBEAT_MS?)');
    // nothing close: named alone
    expect(warnings).toContain('environment: unknown variable TIER_SOMETHING_ELSE_ENTIRELY ignored');
  });

  it("an unknown CONFIG_FILE key names the closest key, or every key when none is close", () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-unknown-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ heartbeatMS: 1000, zzz: 1 }));
      const { warnings } = loadConfig({ CONFIG_FILE: file });
      expect(warnings).toContain('CONFIG_FILE: unknown key "heartbeatMS" ignored (did you mean "heartbeatMs"?)');
      expect(warnings.find((w) => w.includes('"zzz"'))).toMatch(/\(known: .*heartbeatMs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closestName: a left-off or added suffix, a typo within a quarter of the name; nothing farther', () => {
    const known = ['TIER_HEARTBEAT_MS', 'TIER_IDLE_MS', 'TIER_MAX_HUB_SESSIONS'];
    expect(closestName('TIER_IDLE', known)).toBe('TIER_IDLE_MS');
    expect(closestName('TIER_MAX_HUB_SESSION', known)).toBe('TIER_MAX_HUB_SESSIONS');
    expect(closestName('TIER_MAX_HBU_SESSIONS', known)).toBe('TIER_MAX_HUB_SESSIONS');
    expect(closestName('TIER_PUSH_URL', known)).toBeUndefined();
    expect(closestName('TIER_', known)).toBeUndefined();
  });
});

describe('settings that must fit together', () => {
  it("TIER_MAX_FRAME_BYTES must carry one attribute of TIER_HUB_MAX_VALUE_BYTES: a desired value was stored and never delivered", () => {
    expect(() => loadConfig({ TIER_MAX_FRAME_BYTES: '512' })).toThrow(/^TIER_MAX_FRAME_BYTES \(512\) cannot carry one attribute of TIER_HUB_MAX_VALUE_BYTES \(1024 characters\): it needs 3392/);
    expect(loadConfig({ TIER_MAX_FRAME_BYTES: '512', TIER_HUB_MAX_VALUE_BYTES: '64' }).config.maxFrameBytes).toBe(512);
    expect(loadConfig({ TIER_MAX_FRAME_BYTES: '3392' }).config.maxFrameBytes).toBe(3392);
  });

  it("OpenTelemetry's sampler argument and endpoints are checked as ours are: 0x0 sampled nothing, a garbage endpoint was silent", () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    for (const arg of ['0x0', '5', 'abc', '-0.5']) expect(() => loadConfig({ ...on, OTEL_TRACES_SAMPLER_ARG: arg }), arg).toThrow(/^OTEL_TRACES_SAMPLER_ARG: expected a ratio in 0\.\.1/);
    for (const arg of [' 0.25 ', '1e-2', '1']) expect(() => loadConfig({ ...on, OTEL_TRACES_SAMPLER_ARG: arg }), arg).not.toThrow();
    // tracing off, or another sampler's argument: not ours to refuse (review diff8)
    expect(() => loadConfig({ OTEL_TRACES_SAMPLER_ARG: '0x0' })).not.toThrow();
    expect(() => loadConfig({ ...on, OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_TRACES_SAMPLER_ARG: 'endpoint=http://j:14250,pollingIntervalMs=5000' })).not.toThrow();
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'garbage' })).toThrow(/^OTEL_EXPORTER_OTLP_ENDPOINT: not a URL/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://x/v1/traces' })).toThrow(/^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: /);
  });

  it('a CONFIG_FILE number given as a list is refused (String([8080]) read as a port); NODE_ID keeps to a pod name\'s characters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-types-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ port: [8080] }));
      expect(() => loadConfig({ CONFIG_FILE: file })).toThrow(/^CONFIG_FILE\.port: expected an integer in 0\.\.65535, got \[8080\]|^port: expected an integer/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const id of ['a}b', 'node {x}', 'a b', 'tab\there', 'x'.repeat(257)]) expect(() => loadConfig({ NODE_ID: id }), id).toThrow(/^NODE_ID: .* must be 1\.\.256 characters without braces, whitespace or control characters$/);
    // what schedulers name their tasks (review diff8): a pod, a Nomad allocation, an ECS task ARN
    for (const id of ['hubtier-7d9f8.pod_1:a', 'web.api[0]', 'arn:aws:ecs:eu-west-1:123456789012:task/cluster/0f1e2d']) expect(loadConfig({ NODE_ID: id }).config.nodeId).toBe(id);
  });

  it('TIER_MALLOC_TRIM_MS and TIER_SHADOW_PACK_MS are 0 (off) or at least 100 ms', () => {
    for (const key of ['TIER_MALLOC_TRIM_MS', 'TIER_SHADOW_PACK_MS']) {
      expect(() => loadConfig({ [key]: '1' }), key).toThrow(new RegExp(`^${key}: expected 0 \\(off\\) or 100\\.\\.3600000, got "1"$`));
      expect(() => loadConfig({ [key]: '0' })).not.toThrow();
      expect(() => loadConfig({ [key]: '100' })).not.toThrow();
    }
  });

  it('TIER_HUB_RATE_BURST is at least 4: at 1 every hub was closed 4004 right after its hello', () => {
    expect(() => loadConfig({ TIER_HUB_RATE_BURST: '1' })).toThrow(/^TIER_HUB_RATE_BURST: expected an integer in 4\.\./);
    expect(loadConfig({ TIER_HUB_RATE_BURST: '4' }).config.hubRateBurst).toBe(4);
  });
});
