/** The node's composition root. Over 400 lines: one start-up wiring every part in the order it needs them. */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { CloseCode } from '../../proto/errors.js';
import { actorFailureLog, type ActorSystem } from '../actors/actor.js';
import { writeDesired } from '../actors/desired-write.js';
import { DRAIN_RESULTS_MS, drainSpreadMs, type HubSession, type HubSessionDeps } from '../actors/hub-session.js';
import { desiredRecheck } from './desired-recheck.js';
import { HubErrorLog } from '../actors/hub-error-log.js';
import type { HubLimits } from '../actors/hub-limits.js';
import { SessionIndex, type SessionView } from '../actors/session-index.js';
import { withLocalCommands } from '../actors/local-commands.js';
import { ShadowPacker } from '../actors/shadow-packer.js';
import { Interner } from '../actors/intern.js';
import { AttrShapes } from '../actors/attr-shapes.js';
import { TimerWheel } from '../actors/timer-wheel.js';
import { createAdminApp, notReadyReasons } from '../admin/admin-server.js';
import { HelloRate } from '../auth/hello-rate.js';
import { Shedder } from '../actors/shed.js';
import { runChecks } from '../admin/diagnose.js';
import { diagnoseChecks, fdVerdict } from '../admin/diagnose-checks.js';
import { NodeMetrics } from '../admin/metrics.js';
import { nodeAuth } from './auth-wiring.js';
import { HubAdmission } from '../auth/hub-admission.js';
import { mountApi } from '../api/routes.js';
import { mountRulesApi } from '../api/rules-routes.js';
import { storeWriteAdmission } from '../api/store-admission.js';
import { STALL_WARN_MS } from '../ports/write-stall.js';
import { isClusterMode, type Config } from '../config/config.js';
import { AccessLog } from '../log/access-log.js';
import { addLogFields, type Logger } from '../log/logger.js';
import { failureLog } from '../log/sampler.js';
import type { Ports, PortsHealth } from '../ports/ports.js';
import { dataDiskOf, portsFor } from './ports.js';
import { createAutomation } from '../rules/automation.js';
import { prometheusRuleMetrics } from '../rules/metrics.js';
import { mountAppGateway } from '../transport/app-gateway.js';
import { HomeFeeds } from '../transport/home-feeds.js';
import { EventPublisher } from '../actors/event-publisher.js';
import { mountHubGateway } from '../transport/hub-gateway.js';
import { loadUws, type UwsBinding } from '../transport/uws.js';
import { listen } from './listen.js';
import { ListenPause } from './listen-pause.js';
import { portsWhenReachable } from './backend-wait.js';
import { StartHold } from './start-hold.js';
import { startMallocTrimmer } from './malloc-trim.js';
import { ReadFailures } from '../log/read-failures.js';
import { heapRelease } from './heap-release.js';
import { UpgradeLimits } from '../transport/upgrade-limits.js';
import { AppSocketLimits, defaultMaxAppSockets, ownOpenFileLimit } from '../transport/app-limits.js';
import { LoopLag } from '../transport/loop-lag.js';
import { LOOP_SAMPLE_MS, LOOP_WINDOW_MS, LoopDelaySampler } from '../admin/default-metrics.js';
import { memoryPressure, startMemoryGauge } from '../transport/cgroup-memory.js';
import { guardApp } from '../transport/guard.js';
import { WriteBatch } from '../transport/write-batch.js';
import { configureHttp, pendingAnswers, type RouteTable } from '../transport/http.js';
import { traceFields } from '../trace/active-span.js';
import { startTracing, stopTracing } from '../trace/tracing.js';
import { fleetParts } from './fleet-wiring.js';
import { checkSealingKey } from './sealing-key-check.js';
import { sharedSecretsProbe } from './shared-secrets-check.js';
import type { CloseOrder } from '../../proto/subjects.js';
import { encodeBus } from '../protocol/codec.js';
import { prometheusFleetSyncMetrics } from '../admin/fleet-sync-metrics.js';
import { AuditTrail } from '../actors/audit-trail.js';
import { mountAuditApi } from '../api/audit-routes.js';
import { homeHubIds } from '../ports/hub-registry/hub-registry.js';
import { keepNodeAlive } from './node-liveness.js';
import { RedisDataWatch } from './redis-data-watch.js';

export interface RunningServer {
  readonly port: number;
  readonly adminPort: number;
  readonly binding: UwsBinding;
  readonly sessions: SessionView<HubSession>;
  /** Stops taking connections, tells hubs to reconnect elsewhere, flushes state, closes the ports. */
  close(): Promise<void>;
}

/**
 * Wires one connection node: ports, actors, gateways, API and admin port. In cluster mode it first
 * waits for NATS and Redis (src/compose/backend-wait.ts), serving health, readiness and metrics; `signal` stops that wait.
 */
export async function startServer(config: Config, log: Logger, makePorts?: (timers: TimerWheel) => Promise<Ports>, options: { signal?: AbortSignal } = {}): Promise<RunningServer> {
  const binding = loadUws({ requireNative: config.uwsRequireNative, onWarning: (msg) => log.warn(msg) });
  log.info({ package: binding.packageName, native: binding.native }, 'uWebSockets.js loaded');
  // on only with an OTLP endpoint in the environment (README "Traces")
  const tracer = await startTracing(config, config.nodeId);
  if (tracer) {
    // every line written while a sampled span is active names it (traceId, spanId); off, lines pay nothing
    addLogFields(log, traceFields);
    log.info({ ratio: tracer.ratio, endpoint: tracer.endpoint }, 'tracing on');
  }

  const timers = new TimerWheel({ onError: (err) => log.error({ err }, 'timer callback failed') });
  configureHttp(config);
  const sessions = new SessionIndex<HubSession>();
  const loopDelays = new LoopDelaySampler(LOOP_SAMPLE_MS, LOOP_WINDOW_MS, false);
  // one event-loop sampler from the start (a wait for backends too): admission, diagnose and /metrics read it
  const loop = new LoopLag(LOOP_SAMPLE_MS, undefined, (lateMs, now) => loopDelays.record(lateMs, now));
  const metrics = new NodeMetrics(() => sessions.size, config.release, loopDelays);
  metrics.attach({ hubs: sessions });
  // the bus of an attempt that failed on Redis is kept for the next one
  const hold = new StartHold();
  const connect = () => portsFor(config, timers, log, metrics, hold);
  const waited =
    !makePorts && isClusterMode(config)
      ? await portsWhenReachable(connect, { config, log, uws: binding.uws, metrics, signal: options.signal }).catch(async (err: unknown) => {
          await hold.close();
          throw err;
        })
      : null;
  const ports = waited ? waited.ports : makePorts ? await makePorts(timers) : await connect();
  metrics.binding.set({ package: binding.packageName, native: String(binding.native) }, 1);
  // what timers read of the process (its resident size, its cgroup) fails counted, never thrown (EMFILE)
  const readFailures = new ReadFailures(log);
  metrics.attach({ readFailures: readFailures.counts });
  const trimmer = startMallocTrimmer(config.mallocTrimMs, log, (before, after, seconds) => metrics.mallocTrimmed(before, after, seconds), (err) => readFailures.failed('rss', err));
  const system: ActorSystem = {
    timers,
    log,
    mailboxSize: config.mailboxSize,
    onFailure: (_address, messageType) => metrics.actorFailures.inc({ message: messageType }),
    supervision: { maxFailures: config.actorMaxFailures, withinMs: config.actorFailureWindowMs },
    // a backend away fails every session's messages alike: sampled, with a count of what was not logged
    failureLog: actorFailureLog(log),
  };
  // fleet: sealed hub secrets, the fleet routes, commands to disabled hubs refused, token revocation (src/compose/fleet-wiring.ts)
  // commands for hubs held here still reach them while NATS is down (src/actors/local-commands.ts)
  const commandBus = withLocalCommands(ports.bus, sessions);
  // a hub moved or deleted says so in its home's history; `events` (below, once the rules exist) is there before any request
  // in a cluster, the sessions held are re-checked after a bus outage, closed as the operator's missed order would close them
  const held = { sessions, close: (s: HubSession, e: CloseOrder['e']) => void s.tell({ type: 'closeOrder', data: encodeBus({ e }) }), metrics: ports.link ? prometheusFleetSyncMetrics(metrics.registry) : undefined };
  const fleet = await fleetParts(config, ports, log, metrics, commandBus, (event, epoch) => events.publish(event, epoch), held);
  await checkSealingKey(ports.registry, fleet.box, isClusterMode(config) ? 'the cluster registry (Redis)' : resolve(config.dataDir), log);
  const { adminTokens, auth, gate } = nodeAuth(config, metrics, log, fleet.revoked, () => ports.rules.sharedTime());
  // every control action: stored (ports.audit) and published on `audit.events` for a SIEM
  const audit = new AuditTrail({ ...(ports.audit ? { store: ports.audit } : {}), bus: ports.bus, node: config.nodeId, log: log.child({ part: 'audit' }) });
  // the node's one hub → home lookup: the cluster registry caches it (CachingHubRegistry), the embedded one reads LMDB
  const homeOfHub = async (hubId: string) => (await ports.registry.lookup(hubId))?.homeId ?? null;
  // what one hub may make the node hold: its sessions, the API and rules' desired writes keep to it
  const hubLimits: HubLimits = {
    devices: config.hubMaxDevices,
    attrsPerDevice: config.hubMaxAttrsPerDevice,
    valueBytes: config.hubMaxValueBytes,
    shadowBytes: config.hubMaxShadowBytes,
    desiredBytes: config.hubMaxDesiredBytes,
    commandsInFlight: config.hubMaxCommandsInFlight,
  };
  const automation = createAutomation({
    store: ports.rules,
    lease: ports.lease,
    push: ports.push,
    shadows: ports.shadows,
    homeOfHub,
    runCommand: fleet.commandTo,
    // as PUT .../desired writes it: refused and undone if the hub left the rule's home meanwhile
    setDesired: (hubId, deviceId, patch, homeId) => writeDesired({ shadows: ports.shadows, registry: ports.registry, bus: ports.bus }, hubId, homeId, deviceId, patch, hubLimits),
    timers,
    log: log.child({ part: 'rules' }),
    nodeId: config.nodeId,
    metrics: prometheusRuleMetrics(metrics.registry),
    commandTimeoutMs: config.commandTimeoutMs,
    commandTimeoutMaxMs: config.commandTimeoutMaxMs,
    hubWaitMs: config.ruleHubWaitMs,
    hubMaxCommands: config.hubMaxCommandsInFlight,
    homeCpuMsPerSecond: config.ruleHomeCpuMs, homeActionsPerSecond: config.ruleHomeActionsPerSec, homeNotificationsPerMinute: config.ruleHomeNotifyPerMin,
    supervision: { supervision: system.supervision, onFailure: system.onFailure, failureLog: system.failureLog },
    ...(ports.pendingRuns ? { pendingRuns: ports.pendingRuns } : {}),
    ...(ports.history?.marks ? { marks: ports.history.marks, hubsOfHome: (homeId: string) => homeHubIds(ports.registry, homeId) } : {}),
    audit,
  });
  // a hub's events go to this node's rules, the home's history and the bus (apps, other services)
  const events = new EventPublisher(ports.bus, ports.history, log.child({ part: 'events' }), (event, parent, offset) => automation.onEvent(event, parent, offset), {
    laterSession: async (hubId, epoch) => ((await ports.directory.lookup(hubId))?.epoch ?? 0) > epoch,
  });
  const publishEvent = events.publish;
  const packer = config.shadowPackMs > 0 ? new ShadowPacker(system.timers, config.shadowPackMs) : null;
  if (packer) metrics.attach({ unpackedCaches: () => packer.unpacked });
  metrics.attach({ events });
  const hubDeps: HubSessionDeps = {
    system,
    bus: ports.bus,
    directory: ports.directory, registry: ports.registry,
    shadows: ports.shadows,
    nodeId: config.nodeId,
    heartbeatMs: config.heartbeatMs,
    idleMs: config.idleMs,
    helloTimeoutMs: config.helloTimeoutMs,
    draining: () => draining,
    maxFrameBytes: config.maxFrameBytes,
    ratePerSec: config.hubRatePerSec,
    rateBurst: config.hubRateBurst,
    limits: hubLimits,
    publishEvent,
    eventsDurable: (homeId) => events.durable(homeId), stateAfterEvents: isClusterMode(config),
    // asked only while tracing is on: a report the rules may trigger on is traced from the hub
    rulesListen: (event) => automation.engine.listens(event),
    sessions,
    metrics,
    interner: new Interner(),
    shapes: new AttrShapes(),
    ...(packer ? { packer } : {}),
    noteFirmware: (hubId, firmware) => fleet.fleet.noteFirmware(hubId, firmware),
    openFailures: failureLog(log, 'hub sessions that could not open, not logged', 'warn'),
    hubErrors: new HubErrorLog(log),
  };

  const app = guardApp(binding.uws.App(), log);
  // request ids and the access line of every API route; app connections are named by the same ids
  const access = new AccessLog(log, config.nodeId, config.accessLogRate);
  const writes = new WriteBatch((err) => log.error({ err }, 'deferred write failed'));
  // read only when a hub knocks (or at a scrape): an idle node reads nothing
  const memory = startMemoryGauge(config.shedMemoryFraction, log, undefined, (err) => readFailures.failed('cgroup', err));
  const heap = memory ? heapRelease(log) : null;
  // the cgroup's or the heap's line passed: hubs and apps refused busy (readiness says it, stays ready)
  const nearMemoryLimit = () => (memory === null ? null : memoryPressure(memory.reading(), config.shedMemoryFraction));
  const limits = new UpgradeLimits({
    maxSockets: config.maxHubSessions,
    maxPending: config.maxPendingUpgrades,
    ratePerSec: config.hubConnectRatePerSec,
    maxLoopLagMs: config.maxLoopLagMs,
    loopLagMs: () => loop.ms,
    ...(memory ? { maxMemoryFraction: config.shedMemoryFraction, memory: memory.reading, ...(heap ? { memoryPressed: heap.pressed } : {}) } : {}),
  });
  const redisClock = ports.diagnose?.redis;
  if (redisClock) metrics.attach({ clockSkew: async () => { const t = await redisClock.time(); return (t.localMs - t.serverMs) / 1000; } });
  const dataDisk = dataDiskOf(config);
  // a Redis that lost its data answers as before: the secrets record's salt tells (redis-data-watch.ts)
  const record = ports.secretRecord;
  const dataWatch = record
    ? new RedisDataWatch({
        readMark: () => record.dataMark(),
        noteLost: (note, seen) => record.noteDataLost(note, seen),
        noteAccepted: (salt) => record.noteAccepted(salt),
        clearNote: (note) => record.clearDataLost(note),
        saltOr: (fresh) => record.salt(fresh),
        freshSalt: () => randomBytes(16).toString('base64url'),
        log,
        onLost: () => log.warn({ homes: automation.storeLost() }, 'rules: every home held reads its rules again, the cron triggers too'),
        everyMs: Math.max(1_000, Math.floor(config.directoryTtlMs / 3)),
      })
    : undefined;
  const recordsLost = () => dataWatch?.lostSince != null;
  metrics.attach({ recordsLost, ...(dataDisk !== undefined ? { dataDisk } : {}), nodeIdShared: () => ports.directory.nodeIdShared?.() === true, answers: pendingAnswers, admission: limits.refusals, push: ports.push, draining: () => draining, ...(memory ? { memory: memory.reading, ...(heap ? { heapReleases: heap } : {}) } : {}) });
  mountHubGateway(app, {
    admission: new HubAdmission(ports.registry, ports.nonces, config.authSkewS, Date.now, fleet.box, isClusterMode(config) ? config.authSkewS : 0, HelloRate.perMinute(config.hubHellosPerMin), dataWatch ? () => dataWatch.recheck().catch(() => recordsLost()) : recordsLost),
    limits,
    sessions: hubDeps,
    log,
    idleMs: config.idleMs,
    writes,
    metrics,
    draining: () => draining,
  });
  const feeds = new HomeFeeds(ports.bus, app, log, { history: ports.history, link: ports.link, framesOut: (op, frames) => metrics.appFramesOut(op, frames) });
  // hub sessions + app sockets + the node's own files fit the open-file limit: accept() never hits EMFILE
  const appLimits = new AppSocketLimits(config.maxAppSockets ?? defaultMaxAppSockets(ownOpenFileLimit(), config.maxHubSessions), config.maxAppSocketsPerUser, () => nearMemoryLimit() !== null && (heap?.pressed(), true));
  const openFileLimit = ownOpenFileLimit();
  log.info({ maxAppSockets: appLimits.maxSockets, perUser: appLimits.maxPerUser, openFileLimit: openFileLimit ?? null, maxHubSessions: config.maxHubSessions }, 'app socket limits');
  // said at start, not only by /debug/diagnose: a pod sized for TIER_MAX_HUB_SESSIONS ran out of files at a fifth of it
  const room = openFileLimit === undefined ? undefined : fdVerdict(0, openFileLimit, config.maxHubSessions, appLimits.maxSockets);
  if (room && room.verdict !== 'ok') log.warn({ openFileLimit, maxHubSessions: config.maxHubSessions, maxAppSockets: appLimits.maxSockets, hint: room.hint }, 'open-file limit below the session limits: the node runs out of files before it is full');
  mountAppGateway(app, {
    auth,
    feeds,
    log,
    maxMessageBytes: config.maxFrameBytes,
    commandTimeoutMaxMs: config.commandTimeoutMaxMs,
    maxBackpressure: config.appMaxBackpressure,
    requestRate: { ratePerSec: config.appRequestsPerSec, rateBurst: config.appRequestsBurst },
    writes,
    sockets: fleet.sockets,
    limits: appLimits,
    metrics,
    requestIds: access.ids,
    session: {
      system,
      sendCommand: fleet.commandTo,
      homeOf: homeOfHub,
      commandTimeoutMs: config.commandTimeoutMs,
      maxSubscriptions: 64,
      audit,
    },
  });
  // before mountApi: its catch-all 404 must stay the last route
  const table: RouteTable = [];
  const admitWrite = storeWriteAdmission(ports.writesWaitingMs, STALL_WARN_MS);
  mountRulesApi(app, {
    auth,
    store: ports.rules,
    engine: automation.engine,
    homeOfHub,
    log: log.child({ part: 'rules' }),
    maxBodyBytes: config.maxBodyBytes,
    writes,
    table,
    httpMetrics: metrics,
    access,
    validate: { maxCommandTimeoutMs: config.commandTimeoutMaxMs },
    audit,
    admitWrite,
  });
  fleet.mount(app, { auth, writes, table, httpMetrics: metrics, access, audit, admitWrite, eventsSettled: () => events.settled() });
  mountAuditApi(app, { auth, ...(ports.audit ? { store: ports.audit } : {}), log, maxBodyBytes: config.maxBodyBytes, writes, table, httpMetrics: metrics, access });
  mountApi(app, {
    auth,
    bus: commandBus,
    registry: ports.registry,
    directory: ports.directory,
    shadows: ports.shadows,
    log,
    maxBodyBytes: config.maxBodyBytes,
    commandTimeoutMs: config.commandTimeoutMs,
    commandTimeoutMaxMs: config.commandTimeoutMaxMs,
    hubLimits,
    writes,
    table,
    httpMetrics: metrics,
    commandMetrics: metrics,
    access,
    audit,
    admitWrite,
  });
  let started = false;
  let draining = false;
  let pause: ListenPause | undefined;
  const health = (): PortsHealth => ports.health?.() ?? { backends: {}, detail: {} };
  metrics.backendsUp(() => health().backends);
  ports.link?.onReconnect(() => metrics.busReconnected());
  // desired changes published while this node was off the bus never reached its sessions: each reads
  // its stored desired state back (one shadow read a hub, paced) and sends what is newer (review "desired")
  const recheck = desiredRecheck(() => sessions.list());
  ports.link?.onReconnect(() => recheck.reconnected());
  const mode = isClusterMode(config) ? 'cluster' : 'embedded';
  const admin = createAdminApp(binding.uws, {
    metrics,
    log,
    ...gate, // the names the port answers to, and wrong admin tokens limited by address
    logLevel: { adminToken: adminTokens }, shed: { adminToken: adminTokens, shedder: new Shedder(sessions) },
    // this node alone: a shared backend's outage is detail, or every pod would leave the Service at once
    readiness: () => {
      const h = health();
      const hubSockets = limits.stats;
      const pressed = nearMemoryLimit();
      const reasons = notReadyReasons({ started, draining, full: hubSockets.sockets >= config.maxHubSessions, localStoreOk: h.local !== false, listenPaused: pause?.paused === true });
      return {
        ready: reasons.length === 0,
        detail: {
          reasons,
          node: config.nodeId,
          mode,
          uws: { package: binding.packageName, native: binding.native },
          sessions: sessions.size,
          hubSockets,
          maxHubSessions: config.maxHubSessions,
          appSockets: { sockets: appLimits.sockets, max: appLimits.maxSockets, perUser: appLimits.maxPerUser },
          ...(pressed !== null ? { nearMemoryLimit: pressed } : {}),
          draining,
          backendsUp: h.backends,
          degraded: [...Object.keys(h.backends).filter((name) => !h.backends[name]), ...(recordsLost() ? ['redis-data'] : [])],
          ...(dataWatch?.lostSince != null ? { redisDataLostSince: new Date(dataWatch.lostSince).toISOString() } : {}),
          backends: h.detail,
          rules: automation.pool.stats(),
        },
      };
    },
    diagnose: {
      adminToken: adminTokens,
      run: () =>
        runChecks(
          diagnoseChecks({
            probes: ports.diagnose,
            ...(ports.secretRecord ? { sharedSecrets: sharedSecretsProbe(ports.secretRecord, config) } : {}),
            pool: () => automation.pool.stats(),
            release: config.release,
            binding,
            dataDisk,
            maxHubSessions: config.maxHubSessions,
            maxAppSockets: appLimits.maxSockets,
            loop,
            ...(memory ? { memory: { reading: memory.reading, shedAbove: config.shedMemoryFraction } } : {}),
          }),
          { node: config.nodeId, mode, release: config.release },
        ),
    },
  });

  // pages of the adapters (the BullMQ dashboard of a Redis push queue), behind the admin token
  for (const mount of ports.adminPages ?? []) mount(admin, { adminToken: adminTokens, guesses: gate.guesses, log, maxBodyBytes: config.maxBodyBytes });
  // events stored but not evaluated when the last process died: queued in each home before hubs are back
  await automation.engine.replayUnevaluated().catch((err: unknown) => log.error({ err }, 'rules: events left unevaluated by an unclean stop not replayed'));
  // this node's entries kept alive; the hubs of nodes that died (an earlier process of this id first) said offline
  const open = () => sessions.list().filter((s) => s.state === 'online');
  await dataWatch?.start();
  const stopLiveness = await keepNodeAlive({ directory: ports.directory, nodeId: config.nodeId, placements: (ids) => ports.registry.placements(ids), publishEvent, held: open, log }, config);
  const main = await listen(app, config.host, config.port, config.reusePort);
  // the port the start-up wait served on: handed over at once, so probes see it answer throughout
  waited?.closeAdmin();
  const adminSocket = await listen(admin, config.adminHost, config.adminPort, false);
  const port = binding.uws.us_socket_local_port(main.socket as never);
  const adminPort = binding.uws.us_socket_local_port(adminSocket.socket as never);
  // out of open files, the public port closes so the loop stops spinning on accept() (listen-pause.ts)
  pause = new ListenPause({
    socket: main.socket,
    listen: () => listen(app, config.host, port, config.reusePort),
    close: (socket) => binding.uws.us_listen_socket_close(socket),
    log,
    registry: metrics.registry,
  });
  const listening = pause;

  automation.start();
  started = true;

  return {
    port,
    adminPort,
    binding,
    sessions,
    async close() {
      if (draining) return;
      draining = true;
      const drainStarted = Date.now();
      // one `drain step` line per step, with counts: how far a slow or stuck shutdown got
      const step = (name: string, fields: Record<string, unknown> = {}) => log.info({ step: name, ms: Date.now() - drainStarted, ...fields }, 'drain step');
      stopLiveness();
      dataWatch?.stop();
      // a rule's action failing from here on may fail for the drain: its event is owed a replay
      automation.engine.draining();
      recheck.stop();
      trimmer?.stop();
      fleet.close();
      listening.stop();
      step('stopped_accepting', { sessions: sessions.size, hubSockets: limits.stats.sockets });
      // hubs come back spread over a few seconds instead of all at once (to another node in a cluster)
      const closing = sessions.list();
      for (const s of closing) s.shutdown(drainSpreadMs());
      step('hubs_told_to_reconnect', { hubs: closing.length });
      // released entries and offline events must leave before the ports close (bounded wait)
      await Promise.race([Promise.allSettled(closing.map((s) => s.whenClosed())), new Promise((r) => setTimeout(r, 5_000 + DRAIN_RESULTS_MS).unref())]);
      step('hub_sessions_closed', { hubs: closing.length, remaining: sessions.size });
      await Promise.race([events.settled(), new Promise((r) => setTimeout(r, 2_000).unref())]);
      // after the hubs' last events: apps reconnect elsewhere and recover from their positions
      step('apps_told_to_reconnect', { apps: fleet.sockets.closeAll(CloseCode.draining, 'draining') });
      // cron stops, delayed actions are dropped, running ones finish, the worker threads end
      await automation.close();
      step('rules_stopped');
      // a durable queue keeps its jobs for the other nodes; only one that forgets them is drained
      if (!ports.push.durable) await Promise.race([ports.push.drain(), new Promise((r) => setTimeout(r, 2_000).unref())]);
      // a failed flush (a backend away) still closes everything below, then fails the close (a push queue retrying
      // Redis would write to the ended log); unbounded, but said every 5 s while a slow disk holds it (review "slowdisk")
      const waiting = setInterval(() => log.info({ ms: Date.now() - drainStarted }, 'drain waits for the store to flush the state'), 5_000).unref();
      const unflushed = await ports.shadows.flush().then(() => null, (err: unknown) => err).finally(() => clearInterval(waiting));
      step('state_flushed', { pushDurable: ports.push.durable, flushed: unflushed === null });
      access.close();
      binding.uws.us_listen_socket_close(adminSocket.socket);
      if (ports.close) await ports.close();
      else {
        await Promise.allSettled([ports.bus.close(), ports.directory.close(), ports.shadows.close(), ports.registry.close(), ports.nonces.close()]);
        await Promise.allSettled([ports.push.close(), ports.rules.close(), ports.lease.close(), ports.history?.close(), ports.audit?.close()]);
      }
      timers.close();
      loop.close();
      step('ports_closed');
      // the spans of the drain itself are exported too; a collector that is down cannot hold the exit
      if (tracer) await stopTracing(tracer, log);
      if (unflushed !== null) throw unflushed;
    },
  };
}
