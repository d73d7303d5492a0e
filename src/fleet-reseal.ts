/**
 * `npm run fleet -- reseal`: every hub secret in the registry sealed anew with the current key
 * (`TIER_SECRET_KEY`), those sealed with an older key (`TIER_SECRET_KEYS_OLD`) and those stored in
 * clear by earlier versions alike, so an old key can then be retired. The clear secret does not
 * change: hubs notice nothing, and nodes that cache a record sealed with the old key still open it
 * while they are given that key. Each record is written only if its secrets are still those read
 * (a compare-and-set): one rotated meanwhile on a live cluster is left alone; run the command again for those.
 */
import type { SecretBox } from './auth/secret-box.js';
import type { HubPatch, HubRegistry } from './ports/hub-registry/hub-registry.js';

export interface ResealReport {
  examined: number;
  resealed: number;
  /** hubs whose secrets could not be opened (a key not given) or changed under the command */
  skipped: string[];
}

export async function resealAll(registry: HubRegistry, box: SecretBox, pageSize = 500): Promise<ResealReport> {
  const report: ResealReport = { examined: 0, resealed: 0, skipped: [] };
  let after: string | undefined;
  do {
    const page = await registry.list({ limit: pageSize, scanLimit: pageSize, ...(after !== undefined ? { after } : {}) });
    for (const hub of page.hubs) {
      report.examined++;
      const prev = hub.previousSecret;
      if (!box.needsReseal(hub.secret) && !(prev && box.needsReseal(prev.secret))) continue;
      const patch: HubPatch = {};
      try {
        if (box.needsReseal(hub.secret)) patch.secret = box.seal(hub.hubId, box.open(hub.hubId, hub.secret));
        if (prev && box.needsReseal(prev.secret)) patch.previousSecret = { ...prev, secret: box.seal(hub.hubId, box.open(hub.hubId, prev.secret)) };
      } catch (err) {
        report.skipped.push(`${hub.hubId}: ${(err as Error).message}`);
        continue;
      }
      // written only if no rotation (or deletion) came since the page was read
      if ((await registry.update(hub.hubId, patch, { secret: hub.secret, previousSecret: prev?.secret ?? null })) === null) {
        report.skipped.push(`${hub.hubId}: changed while resealing (rotated or deleted): run again`);
        continue;
      }
      report.resealed++;
    }
    after = page.next ?? undefined;
  } while (after !== undefined);
  return report;
}

/**
 * Refuses a cluster reseal whose key is not the one the cluster's nodes seal with, as recorded by
 * the last node started (src/compose/shared-secrets-check.ts): run before the nodes were given it,
 * or with a mistyped key, the reseal left every hub sealed with a key no node had, and a key kept
 * only in a shell variable lost every hub secret. Answers the refusal, or null to go on; a cluster
 * whose nodes never started records no key and is not refused.
 */
export function resealKeyRefusal(recorded: Readonly<Record<string, string>>, box: SecretBox, where: string): string | null {
  const nodes = recorded.TIER_SECRET_KEY;
  if (nodes === undefined || nodes === box.currentId) return null;
  return (
    `TIER_SECRET_KEY (key ${box.currentId}) is not the key this cluster's nodes seal with (${nodes}, recorded by the last node started in ${where}): ` +
    `resealed with it, no node could open a hub's secret. Give every node the new key first (and the old one in TIER_SECRET_KEYS_OLD), then reseal; ` +
    `--force reseals anyway (when no node will run with ${nodes} again)`
  );
}
