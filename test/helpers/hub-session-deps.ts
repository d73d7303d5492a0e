import { HubErrorLog } from '../../src/actors/hub-error-log.js';
import type { HubSessionDeps } from '../../src/actors/hub-session.js';
import { SessionIndex } from '../../src/actors/session-index.js';
import type { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';

/** What a hub session of the unit tests is given: memory ports, a node's defaults, rate limits out of the way. */
export function hubSessionDeps(wheel: TimerWheel, overrides: Partial<HubSessionDeps> = {}): HubSessionDeps {
  const log = createLogger('silent');
  return {
    system: { timers: wheel, log, mailboxSize: 4 },
    bus: new MemoryBus(wheel, log),
    directory: new MemoryDirectory(),
    shadows: new MemoryShadowStore(),
    nodeId: 'n1',
    heartbeatMs: 30_000,
    idleMs: 75_000,
    helloTimeoutMs: 10_000,
    maxFrameBytes: 16_384,
    ratePerSec: 1_000,
    rateBurst: 1_000,
    publishEvent: () => {},
    hubErrors: new HubErrorLog(log),
    sessions: new SessionIndex(),
    ...overrides,
  };
}
