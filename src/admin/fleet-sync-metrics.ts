/**
 * Counters of a cluster node's fleet healing (src/api/fleet-reconcile.ts, src/api/notice-outbox.ts):
 * how often it reconciled and what that closed, and the notices it sent again after its bus came back.
 */
import { Counter, type Registry } from 'prom-client';
import type { ReconcileMetrics } from '../api/fleet-reconcile.js';
import type { Redelivery } from '../api/notice-outbox.js';

export interface FleetSyncMetrics extends ReconcileMetrics {
  redelivered(r: Redelivery): void;
}

export function prometheusFleetSyncMetrics(registry: Registry): FleetSyncMetrics {
  const registers = [registry];
  const reconciles = new Counter({ name: 'tier_fleet_reconciles_total', help: 'Full fleet reconciles (cache dropped, revocations re-read, held hub sessions re-checked) by trigger: reconnect (this node\'s bus came back), notice (fleet.reconcile from another node)', labelNames: ['trigger'], registers });
  const closes = new Counter({ name: 'tier_fleet_reconcile_closes_total', help: 'Hub sessions (deleted, disabled, moved) and app sockets (app_socket) closed by a reconcile or a re-check: each one a notice this node had missed', labelNames: ['what'], registers });
  const failures = new Counter({ name: 'tier_fleet_reconcile_failures_total', help: 'Reconciles or re-checks that could not read the store (retried after 5 s)', registers });
  const resent = new Counter({ name: 'tier_fleet_notices_resent_total', help: 'Fleet notices (hub changed, token revoked) published again after this node\'s bus reconnected', registers });
  const announced = new Counter({ name: 'tier_fleet_reconcile_announced_total', help: 'fleet.reconcile notices this node announced because its notice outbox overflowed during an outage', registers });
  return {
    reconciled: (trigger) => reconciles.inc({ trigger }),
    closed: (what, n) => closes.inc({ what }, n),
    failed: () => failures.inc(),
    redelivered: (r) => {
      if (r.resent > 0) resent.inc(r.resent);
      if (r.reconcile) announced.inc();
    },
  };
}
