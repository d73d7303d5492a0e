import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../../load/harness/index.js';
import { pushQueueOptions } from '../../src/compose/push-sender.js';
import { loadConfig } from '../../src/config/config.js';
import { SECRET_MIN_CHARS } from '../../src/config/parsers.js';
import { refusal } from '../helpers/config-refusal.js';
import { scriptArgs } from '../helpers/server-process.js';

const KEY = 'a3f1c2e4b5d6978800112233445566778899aabbccddeeff0011223344556677';
const ADMIN = 'admin-token-of-24-chars!';
const JWT = 'jwt-secret-of-at-least-32-chars!';

/** A cluster-mode environment with valid secrets, `over` replacing some. */
const cluster = (over: Record<string, string>) => ({ NATS_URL: 'nats://n:4222', REDIS_URL: 'redis://r:6379', ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, TIER_SECRET_KEY: KEY, ...over });


/** The placeholders of the Secret in deploy/k8s, as a copied manifest would hand them to the node. */
function manifestPlaceholders(): Record<string, string> {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/config.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; stringData?: Record<string, string> });
  return docs.find((d) => d.kind === 'Secret')!.stringData!;
}

describe('secrets given to the node', () => {
  it('the values as written are accepted', () => {
    expect(ADMIN).toHaveLength(SECRET_MIN_CHARS.ADMIN_TOKEN);
    expect(JWT).toHaveLength(SECRET_MIN_CHARS.JWT_SECRET);
    const { config, generated } = loadConfig(cluster({}));
    expect(config).toMatchObject({ adminToken: ADMIN, jwtSecret: JWT, secretKey: KEY });
    expect(generated).toEqual([]);
  });

  it.each(Object.entries(manifestPlaceholders()))('the manifest placeholder of %s is refused, naming the variable and what to do', (name, value) => {
    const err = refusal(cluster({ [name]: value }));
    expect(err.message).toMatch(new RegExp(`^${name}: still a placeholder`));
    expect(err.message).toMatch(/openssl rand/);
    // the message lands in logs: it never carries the value
    expect(err.message).not.toContain(value);
  });

  it('a value containing change-me is refused whatever its length or case', () => {
    expect(refusal(cluster({ JWT_SECRET: `${'x'.repeat(40)}-Change-Me` })).message).toMatch(/^JWT_SECRET: still a placeholder/);
    expect(refusal(cluster({ ADMIN_TOKEN: `changeme-${'y'.repeat(30)}` })).message).toMatch(/^ADMIN_TOKEN: still a placeholder/);
  });

  it('ADMIN_TOKEN shorter than 24 characters is refused', () => {
    expect(refusal(cluster({ ADMIN_TOKEN: ADMIN.slice(1) })).message).toBe('ADMIN_TOKEN: must be at least 24 characters, got 23; make one with `openssl rand -base64 32`');
  });

  it('an admin token shaped like a JWT is refused (the API tells them apart by shape, and limits guesses of the admin token by it)', () => {
    const jwtShaped = 'correct.horse.battery-staple-2026';
    expect(refusal(cluster({ ADMIN_TOKEN: jwtShaped })).message).toBe('ADMIN_TOKEN: shaped like a JWT (three parts joined by dots), which the API takes for a user token; make one with `openssl rand -base64 32`');
    expect(refusal(cluster({ ADMIN_TOKENS_ACCEPTED: jwtShaped })).message).toMatch(/^ADMIN_TOKENS_ACCEPTED\[0\]: shaped like a JWT/);
    // a JWT secret may have any shape
    expect(loadConfig(cluster({ JWT_SECRET: 'aaaaaaaaaa.bbbbbbbbbbbbbbb.cccccccccccc' })).config.jwtSecret).toBe('aaaaaaaaaa.bbbbbbbbbbbbbbb.cccccccccccc');
  });

  it('JWT_SECRET shorter than 32 characters (an HS256 key of 256 bits) is refused', () => {
    expect(refusal(cluster({ JWT_SECRET: JWT.slice(1) })).message).toBe('JWT_SECRET: must be at least 32 characters, got 31; make one with `openssl rand -base64 32`');
  });

  it('a push webhook needs its signing secret (32 characters or more) and an http(s) address', () => {
    const WEBHOOK = 'https://notify.example/hubtier';
    const SIGNING = 'push-webhook-secret-0123456789abc';
    expect(loadConfig({ TIER_PUSH_WEBHOOK_URL: WEBHOOK, TIER_PUSH_WEBHOOK_SECRET: SIGNING }).config).toMatchObject({ pushWebhookUrl: WEBHOOK, pushWebhookSecret: SIGNING, pushWebhookTimeoutMs: 10_000 });
    expect(loadConfig({}).config.pushWebhookUrl).toBeUndefined();
    expect(refusal({ TIER_PUSH_WEBHOOK_URL: WEBHOOK }).message).toMatch(/^TIER_PUSH_WEBHOOK_SECRET: needed with TIER_PUSH_WEBHOOK_URL/);
    expect(refusal({ TIER_PUSH_WEBHOOK_URL: WEBHOOK, TIER_PUSH_WEBHOOK_SECRET: SIGNING.slice(2) }).message).toBe('TIER_PUSH_WEBHOOK_SECRET: must be at least 32 characters, got 31; make one with `openssl rand -base64 32`');
    expect(refusal({ TIER_PUSH_WEBHOOK_URL: WEBHOOK, TIER_PUSH_WEBHOOK_SECRET: `change-me-${SIGNING}` }).message).toMatch(/^TIER_PUSH_WEBHOOK_SECRET: still a placeholder/);
    expect(refusal({ TIER_PUSH_WEBHOOK_URL: 'ftp://notify.example/', TIER_PUSH_WEBHOOK_SECRET: SIGNING }).message).toMatch(/^TIER_PUSH_WEBHOOK_URL: expected a https: or http: URL/);
    expect(refusal({ TIER_PUSH_WEBHOOK_URL: WEBHOOK, TIER_PUSH_WEBHOOK_SECRET: SIGNING, TIER_PUSH_WEBHOOK_TIMEOUT_MS: '50' }).message).toMatch(/^TIER_PUSH_WEBHOOK_TIMEOUT_MS/);
  });

  it('the push queue: TIER_PUSH_CONCURRENCY (8), TIER_PUSH_ATTEMPTS (10), TIER_PUSH_MAX_BACKOFF_MS (60 s), TIER_PUSH_KEEP_FAILED_S (a week), TIER_PUSH_MAX_QUEUED (100,000), each bounded', () => {
    expect(pushQueueOptions(loadConfig({}).config)).toEqual({ concurrency: 8, attempts: 10, maxBackoffMs: 60_000, keepFailedMs: 604_800_000, maxQueued: 100_000 });
    const set = { TIER_PUSH_CONCURRENCY: '32', TIER_PUSH_ATTEMPTS: '20', TIER_PUSH_MAX_BACKOFF_MS: '300000', TIER_PUSH_KEEP_FAILED_S: '86400', TIER_PUSH_MAX_QUEUED: '5000' };
    expect(pushQueueOptions(loadConfig(set).config)).toEqual({ concurrency: 32, attempts: 20, maxBackoffMs: 300_000, keepFailedMs: 86_400_000, maxQueued: 5_000 });
    for (const bad of ['99', '100000001']) expect(refusal({ TIER_PUSH_MAX_QUEUED: bad }).message, bad).toMatch(/^TIER_PUSH_MAX_QUEUED/);
    for (const bad of ['59', '31536001']) expect(refusal({ TIER_PUSH_KEEP_FAILED_S: bad }).message, bad).toMatch(/^TIER_PUSH_KEEP_FAILED_S/);
    for (const bad of ['0', '257', 'many']) expect(refusal({ TIER_PUSH_CONCURRENCY: bad }).message, bad).toMatch(/^TIER_PUSH_CONCURRENCY/);
    for (const bad of ['0', '1001']) expect(refusal({ TIER_PUSH_ATTEMPTS: bad }).message, bad).toMatch(/^TIER_PUSH_ATTEMPTS/);
    for (const bad of ['999', '3600001']) expect(refusal({ TIER_PUSH_MAX_BACKOFF_MS: bad }).message, bad).toMatch(/^TIER_PUSH_MAX_BACKOFF_MS/);
  });

  it('TIER_SECRET_KEY must be 32 bytes, and not one digit repeated', () => {
    expect(refusal(cluster({ TIER_SECRET_KEY: KEY.slice(2) })).message).toMatch(/^TIER_SECRET_KEY: expected 32 bytes as 64 hex digits or base64/);
    expect(refusal(cluster({ TIER_SECRET_KEY: '0'.repeat(64) })).message).toMatch(/^TIER_SECRET_KEY: one character repeated is not a secret/);
  });

  it('TIER_SECRET_KEYS_OLD: a placeholder among the old keys is refused', () => {
    expect(refusal(cluster({ TIER_SECRET_KEYS_OLD: `${KEY},change-me-old-key` })).message).toMatch(/^TIER_SECRET_KEYS_OLD\[1\]: still a placeholder/);
  });

  it('JWT_SECRETS_ACCEPTED and ADMIN_TOKENS_ACCEPTED: comma-separated, each held to its token\'s rules, named by its place', () => {
    const other = 'another-jwt-secret-of-32-chars!!';
    expect(loadConfig(cluster({ JWT_SECRETS_ACCEPTED: ` ${other} ,${JWT.toUpperCase()}`, ADMIN_TOKENS_ACCEPTED: 'another-admin-token-24ch' })).config).toMatchObject({
      jwtSecretsAccepted: [other, JWT.toUpperCase()],
      adminTokensAccepted: ['another-admin-token-24ch'],
    });
    expect(loadConfig(cluster({})).config).toMatchObject({ jwtSecretsAccepted: [], adminTokensAccepted: [] });
    expect(refusal(cluster({ JWT_SECRETS_ACCEPTED: `${other},short` })).message).toMatch(/^JWT_SECRETS_ACCEPTED\[1\]: must be at least 32 characters, got 5/);
    expect(refusal(cluster({ ADMIN_TOKENS_ACCEPTED: `change-me-${'z'.repeat(30)}` })).message).toMatch(/^ADMIN_TOKENS_ACCEPTED\[0\]: still a placeholder/);
    const file = join(mkdtempSync(join(tmpdir(), 'config-secrets-')), 'config.json');
    writeFileSync(file, JSON.stringify({ jwtSecretsAccepted: [other] }));
    expect(loadConfig(cluster({ CONFIG_FILE: file })).config.jwtSecretsAccepted).toEqual([other]);
  });

  it("the README's demo secrets start a node (its examples run) with a warning naming each", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const admin = /ADMIN_TOKEN=(demo-\S+)/.exec(readme)![1]!;
    const jwt = /JWT_SECRET=(demo-\S+)/.exec(readme)![1]!;
    const { warnings } = loadConfig(cluster({ ADMIN_TOKEN: admin, JWT_SECRET: jwt }));
    expect(warnings.filter((w) => w.includes("the README's demo value"))).toEqual([
      expect.stringMatching(/^ADMIN_TOKEN: the README's demo value/),
      expect.stringMatching(/^JWT_SECRET: the README's demo value/),
    ]);
    expect(loadConfig(cluster({})).warnings.some((w) => w.includes('demo value'))).toBe(false);
  });

  it('one character repeated is refused for the tokens too; one or two characters for their length', () => {
    expect(refusal(cluster({ ADMIN_TOKEN: 'x'.repeat(40) })).message).toMatch(/^ADMIN_TOKEN: one character repeated/);
    expect(refusal(cluster({ ADMIN_TOKEN: 'x' })).message).toMatch(/^ADMIN_TOKEN: must be at least 24 characters, got 1/);
    // padded with spaces, still one character
    expect(refusal(cluster({ ADMIN_TOKEN: `x${' '.repeat(29)}` })).message).toMatch(/^ADMIN_TOKEN: one character repeated/);
  });

  it('a placeholder in CONFIG_FILE is refused too, named by its file key', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'config-secrets-')), 'config.json');
    writeFileSync(file, JSON.stringify({ jwtSecret: 'change-me-jwt-secret-openssl-rand-base64-32' }));
    const env: Record<string, string> = { ...cluster({}), CONFIG_FILE: file };
    delete env.JWT_SECRET;
    expect(refusal(env).message).toMatch(/^CONFIG_FILE\.jwtSecret: still a placeholder/);
  });

  it('a CONFIG_FILE that is not JSON is refused without quoting it: a secret in single quotes or unquoted showed its first characters (review logs)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-secrets-'));
    for (const [name, body, where] of [
      ['quoted.json', `{\n  "jwtSecret": 'JwtSecretValue-0123456789abcdef'\n}`, /is not valid JSON \(a value unquoted or in single quotes/],
      ['bare.json', `{\n  "jwtSecret": Jwt-unquoted-secret-0123456789\n}`, /is not valid JSON \(a value unquoted/],
      ['comma.json', `{\n  "port": 8080,\n}`, /is not valid JSON at line 3, column 1$/],
    ] as const) {
      const file = join(dir, name);
      writeFileSync(file, body);
      const message = refusal({ DATA_DIR: ':memory:', CONFIG_FILE: file }).message;
      expect(message).toMatch(where);
      expect(message).not.toMatch(/JwtSecret|Jwt-unq/);
    }
    // a byte-order mark (a Windows editor's) is read past
    const bom = join(dir, 'bom.json');
    writeFileSync(bom, `\uFEFF${JSON.stringify({ port: 8123 })}`);
    expect(loadConfig({ DATA_DIR: ':memory:', CONFIG_FILE: bom }).config.port).toBe(8123);
    // a URL of the wrong scheme is shown as logs show it: a token in its path or query is not
    expect(refusal({ DATA_DIR: ':memory:', OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://otel.example.com/XyZsecretTokenInThePath0123?key=abc' }).message).toBe(
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected a http: or https: URL, got ftp://otel.example.com/***?key=***',
    );
  });

  it('the embedded default with no secrets given still starts: it generates both, longer than the minimums', () => {
    const { config, generated } = loadConfig({ DATA_DIR: ':memory:' });
    expect(generated).toEqual(['adminToken', 'jwtSecret']);
    expect(config.adminToken.length).toBeGreaterThanOrEqual(SECRET_MIN_CHARS.ADMIN_TOKEN);
    expect(config.jwtSecret.length).toBeGreaterThanOrEqual(SECRET_MIN_CHARS.JWT_SECRET);
    // an empty variable counts as not set (the generated-secrets path of src/main.ts)
    expect(loadConfig({ ADMIN_TOKEN: '', JWT_SECRET: '' }).generated).toEqual(['adminToken', 'jwtSecret']);
  });

  it.each([
    ['ADMIN_TOKEN', 'unset'],
    ['ADMIN_TOKEN', 'empty'],
    ['JWT_SECRET', 'unset'],
    ['JWT_SECRET', 'empty'],
  ])('cluster mode with %s %s is refused: each node would generate its own, and tokens of one would be refused by the others', (name, how) => {
    const env: Record<string, string> = cluster(how === 'empty' ? { [name]: '' } : {});
    if (how === 'unset') delete env[name];
    const err = refusal(env);
    expect(err.message).toBe(`${name}: cluster mode needs it set (not empty), the same on every node; make one with \`openssl rand -base64 32\``);
    // the other secret is never echoed either
    expect(err.message).not.toContain(name === 'ADMIN_TOKEN' ? JWT : ADMIN);
  });

  it('the node process refuses a cluster start without ADMIN_TOKEN: exit 2, before any backend is tried', async () => {
    const env: Record<string, string | undefined> = { ...process.env, ADMIN_TOKEN: '', JWT_SECRET: JWT, TIER_SECRET_KEY: KEY, NATS_URL: 'nats://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:1' };
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, scriptArgs('src/main.ts'), { cwd: ROOT, env }, (_err, _out, stderr) => resolve({ code: child.exitCode, stderr }));
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^configuration error: ADMIN_TOKEN: cluster mode needs it set/m);
    expect(stderr).not.toContain(JWT);
  });

  it('the node process refuses to start on the manifest secrets: exit 2, the reason on stderr', async () => {
    const env = { ...process.env, ...manifestPlaceholders(), NATS_URL: 'nats://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:1' };
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, scriptArgs('src/main.ts'), { cwd: ROOT, env }, (_err, _out, stderr) => resolve({ code: child.exitCode, stderr }));
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^configuration error: ADMIN_TOKEN: still a placeholder/m);
  });
});
