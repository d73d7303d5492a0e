import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../../load/harness/index.js';
import { SECRET_MIN_CHARS } from '../../src/config/parsers.js';

/**
 * Every document of deploy/k8s/*.yaml checked offline against the Kubernetes OpenAPI schemas
 * (`kubernetes-models`, compiled ajv validators) and the prometheus-operator CRDs, as kubeconform
 * does: types, enums and required fields, and, as `kubeconform -strict`, no field the schema does
 * not know (a misspelt `readOnlyRootFileSystem` would otherwise be dropped silently by the API server).
 * The files are not templated: validating them as written is their rendering.
 */

const K8S_DIR = join(ROOT, 'deploy', 'k8s');

interface Manifest {
  file: string;
  index: number;
  doc: Record<string, unknown>;
}

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8')).forEach((d, index) => {
      if (d.errors.length > 0) throw new Error(`${file} #${index}: ${d.errors.map((e) => e.message).join('; ')}`);
      const doc = d.toJS() as unknown;
      if (doc !== null) out.push({ file, index, doc: doc as Record<string, unknown> });
    });
  }
  return out;
}

type Model = new (data: unknown) => { validate(): void };

/** The model class of an apiVersion and kind; an unknown one is an error, as kubeconform without -ignore-missing-schemas. */
async function modelFor(apiVersion: unknown, kind: unknown): Promise<Model> {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new Error('apiVersion and kind must be strings');
  const pkg = apiVersion.startsWith('monitoring.coreos.com/') ? '@kubernetes-models/prometheus-operator' : 'kubernetes-models';
  const mod = (await import(`${pkg}/${apiVersion}`).catch(() => ({}))) as Record<string, Model | undefined>;
  const model = mod[kind];
  if (model === undefined) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model;
}

/**
 * Validates `doc` and returns the problems: schema errors, then the paths of fields the schema
 * does not know. The compiled validators read every property their schema names (and every key of
 * a map), so a key the validation never read is unknown to the schema.
 */
async function problems(doc: Record<string, unknown>): Promise<string[]> {
  const Model = await modelFor(doc.apiVersion, doc.kind);
  const read = new Map<object, Set<PropertyKey>>();
  const watch = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    const keys = new Set<PropertyKey>();
    read.set(value, keys);
    return new Proxy(value, {
      get(target, key, receiver) {
        keys.add(key);
        return watch(Reflect.get(target, key, receiver));
      },
    });
  };
  try {
    Model.prototype.validate.call(watch(doc));
  } catch (err) {
    return [(err as Error).message];
  }
  const unknown: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (typeof value !== 'object' || value === null) return;
    const keys = read.get(value);
    for (const [k, v] of Object.entries(value)) {
      const at = Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`;
      if (!Array.isArray(value) && !keys?.has(k)) unknown.push(`unknown field ${at.slice(1)}`);
      else walk(v, at);
    }
  };
  walk(doc, '');
  return unknown;
}

const manifests = loadManifests();
const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc as any);

describe('deploy/k8s manifests', () => {
  it('holds the objects the deployment needs', () => {
    const kinds = manifests.map((m) => m.doc.kind).sort();
    expect(kinds).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'ServiceMonitor']);
  });

  it('bounds what one client address may hold at the ingress, routed to the ws port (review conn)', () => {
    const [ingress] = byKind('Ingress');
    expect(Number(ingress.metadata.annotations['nginx.ingress.kubernetes.io/limit-connections'])).toBeGreaterThan(0);
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({ name: 'hubtier', port: { name: 'ws' } });
    const ws = byKind('Service').find((s) => s.metadata.name === 'hubtier').spec.ports.find((p: { name: string }) => p.name === 'ws');
    expect(ws).toBeDefined();
  });

  it.each(manifests.map((m) => [`${m.file} #${m.index} ${String(m.doc.kind)}`, m] as const))('%s is valid against its schema', async (_name, m) => {
    expect(await problems(m.doc)).toEqual([]);
  });

  it('rejects a document with a field of the wrong type, an unknown field or an unknown kind', async () => {
    const deployment = structuredClone(byKind('Deployment')[0]);
    deployment.spec.replicas = 'three';
    expect((await problems(deployment)).join('\n')).toMatch(/replicas/);

    const typo = structuredClone(byKind('Deployment')[0]);
    typo.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    expect(await problems(typo)).toEqual(['unknown field spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem']);

    const monitor = structuredClone(byKind('ServiceMonitor')[0]);
    monitor.spec.endpoints = { port: 'admin' };
    expect((await problems(monitor)).join('\n')).toMatch(/endpoints/);

    await expect(problems({ apiVersion: 'apps/v1', kind: 'Deploymnet' })).rejects.toThrow(/no schema/);
  });
});

describe('what the manifests promise', () => {
  const deployment = byKind('Deployment')[0];
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];

  it('runs as non-root on a read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const mounts = new Set(container.volumeMounts.map((v: { mountPath: string }) => v.mountPath));
    expect(mounts.has('/tmp')).toBe(true);
  });

  it('spreads pods over hosts and zones, and holds liveness back with a startup probe', () => {
    expect(pod.topologySpreadConstraints.map((c: { topologyKey: string }) => c.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    expect(container.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
  });

  it('scales on CPU and on hub sessions per pod, with a target well below the node session limit', () => {
    const [hpa] = byKind('HorizontalPodAutoscaler');
    const pods = hpa.spec.metrics.find((m: { type: string }) => m.type === 'Pods');
    expect(hpa.spec.metrics.some((m: any) => m.type === 'Resource' && m.resource.name === 'cpu')).toBe(true);
    expect(pods.pods.metric.name).toBe('tier_hub_sessions');
    const target = Number(pods.pods.target.averageValue);
    const limit = Number(/maxHubSessions: \{[^}]*default: ([\d_]+)/.exec(readFileSync(join(ROOT, 'src/config/config.ts'), 'utf8'))![1]!.replaceAll('_', ''));
    // with one node of the minimum fleet drained, the others take its hubs and stay below the limit
    expect(target * hpa.spec.minReplicas / (hpa.spec.minReplicas - 1)).toBeLessThan(limit);
  });

  it('the prometheus-adapter rule publishes the metric the HPA asks for', () => {
    const values = parseAllDocuments(readFileSync(join(ROOT, 'deploy/prometheus-adapter-values.yaml'), 'utf8'))[0]!.toJS() as any;
    const [rule] = values.rules.custom;
    expect(rule.name.as).toBe('tier_hub_sessions');
    expect(rule.seriesQuery).toMatch(/^tier_hub_sessions\{/);
    expect(rule.resources.overrides.pod.resource).toBe('pod');
  });

  it('scrapes and fences the admin port: the ServiceMonitor selects the admin Service, the NetworkPolicy opens it to monitoring only', () => {
    const [monitor] = byKind('ServiceMonitor');
    const admin = byKind('Service').find((s: any) => s.spec.ports.some((p: { name: string }) => p.name === 'admin'));
    expect(admin.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'admin', path: '/metrics' });
    const [policy] = byKind('NetworkPolicy');
    const adminRules = policy.spec.ingress.filter((r: any) => r.ports.some((p: { port: string }) => p.port === 'admin'));
    expect(adminRules).toEqual([{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 'admin', protocol: 'TCP' }] }]);
  });

  it('ships secrets as placeholders the node refuses: each contains change-me', () => {
    const [secret] = byKind('Secret');
    expect(Object.keys(secret.stringData).sort()).toEqual(['ADMIN_TOKEN', 'JWT_SECRET', 'TIER_SECRET_KEY']);
    for (const value of Object.values(secret.stringData)) expect(value).toMatch(/change-me/);
    expect(Object.keys(SECRET_MIN_CHARS).every((k) => k in secret.stringData)).toBe(true);
  });
});
