import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../../load/harness/index.js';

/**
 * What deploy/Dockerfile promises, read from the file (no container engine runs here; the compiled
 * node it starts is run by test/integration/build.test.ts).
 */

const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = stages.at(-1)!;

describe('deploy/Dockerfile', () => {
  it('builds on a base pinned to a full Node 20 version, never a floating tag', () => {
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    expect(image).toMatch(/^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    expect(lines.filter((l) => l.startsWith('FROM ')).every((l) => l.startsWith('FROM ${NODE_IMAGE}'))).toBe(true);
  });

  it('compiles in a build stage; the image installs run-time dependencies only and runs the compiled node', () => {
    expect(stages).toHaveLength(2);
    expect(stages[0]).toMatch(/^RUN npm run build$/m);
    expect(runtime).toMatch(/npm ci --omit=dev/);
    expect(runtime).toMatch(/^COPY --from=build \/src\/dist \.\/dist$/m);
    expect(runtime).not.toMatch(/^COPY (src|proto)\b/m);
    expect(runtime).toMatch(/^CMD \["node", "dist\/src\/main\.js"\]$/m);
    expect(dockerfile).not.toMatch(/--import|tsx src/);
  });

  it("declares the embedded default's DATA_DIR a volume, owned by the user it runs as", () => {
    const dataDir = /DATA_DIR=(\S+)/.exec(runtime)?.[1];
    expect(dataDir).toBe('/app/data');
    expect(runtime).toMatch(/^VOLUME \["\/app\/data"\]$/m);
    expect(runtime).toContain('chown 1000:1000 /app/data');
    // its files (shadows, the audit trail) are the node's user's alone, on a bind mount too (review "lifecycle")
    expect(runtime).toContain('chmod 700 /app/data');
  });

  it('runs the node under tini: PID 1 has no default action for SIGTERM, and orphans need reaping (review "lifecycle")', () => {
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends tini/);
    expect(runtime).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
  });

  it('runs as the numeric non-root user the Deployment asks for', () => {
    const user = /^USER (\d+):(\d+)$/m.exec(runtime);
    expect(user).not.toBeNull();
    expect(Number(user![1])).toBeGreaterThan(0);
    const deployment = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/hubtier.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec: { template: { spec: { securityContext: { runAsUser: number } } } } })
      .find((d) => d.kind === 'Deployment')!;
    expect(deployment.spec.template.spec.securityContext.runAsUser).toBe(Number(user![1]));
  });

  it('.dockerignore leaves out everything but what the Dockerfile copies', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('**');
    const kept = new Set(ignore.slice(1).map((l) => l.replace(/^!/, '').replace(/\/\*\*$/, '')));
    const copied = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(copied.length).toBeGreaterThan(0);
    for (const source of copied) expect(kept, source).toContain(source);
  });
});
