/**
 * What running a fleet adds to a node, wired in one place so src/compose/server.ts changes by a few
 * lines: the key that seals hub secrets, the fleet's routes, the gate that refuses commands to
 * disabled hubs, and the subscription that keeps this node's cached hub records fresh.
 */
import { sendCommand, type CommandSpec } from '../actors/commands.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { SecretBox } from '../auth/secret-box.js';
import { commandsToEnabledHubs, Fleet, watchHubChanges } from '../api/fleet.js';
import { mountFleetApi } from '../api/fleet-routes.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Ports } from '../ports/ports.js';
import type { RouteTable } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { WriteBatch } from '../transport/write-batch.js';
import { secretBoxFor } from './secret-key.js';

export interface FleetParts {
  box: SecretBox;
  fleet: Fleet;
  /** a command to a hub, refused with `hub_disabled` when the operator disabled it */
  commandTo(hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number): Promise<unknown>;
  /** the fleet's routes; before mountApi (its catch-all must stay last) */
  mount(app: TemplatedApp, context: { auth: Authenticator; writes: WriteBatch; table: RouteTable }): void;
  close(): void;
}

export function fleetParts(config: Config, ports: Ports, log: Logger): FleetParts {
  const box = secretBoxFor(config, log);
  const fleetLog = log.child({ part: 'fleet' });
  const fleet = new Fleet({ registry: ports.registry, bus: ports.bus, directory: ports.directory, shadows: ports.shadows, rules: ports.rules, box, log: fleetLog });
  const stopWatching = watchHubChanges(ports.bus, ports.registry, fleetLog);
  return {
    box,
    fleet,
    commandTo: commandsToEnabledHubs(ports.registry, (hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number) => sendCommand(ports.bus, hubId, deviceId, spec, timeoutMs)),
    mount(app, { auth, writes, table }) {
      mountFleetApi(app, { auth, fleet, log: fleetLog, maxBodyBytes: config.maxBodyBytes, secretGraceS: config.secretGraceS, writes, table });
    },
    close: stopWatching,
  };
}
