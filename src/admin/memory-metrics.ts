import { Counter, Gauge, type Registry } from 'prom-client';
import { droppedLogLines } from '../log/logger.js';
import { HEAP_LIMIT, heapReading, type MemoryReading } from '../transport/cgroup-memory.js';

/** What the memory series read at scrape time (NodeSources' part). */
export interface MemorySources {
  memory?: () => MemoryReading;
  heapReleases?: { readonly count: number; readonly seconds: number };
  /** failed reads of the process's own state by kind (ReadFailures) */
  readFailures?: Readonly<Record<string, number>>;
  /** large HTTP answers held for their readers (PendingAnswers) */
  answers?: { readonly bytes: number; readonly refused: number };
}

/**
 * The node's memory against its cgroup's limit (TIER_SHED_MEMORY), and the collections it made
 * while refusing hubs for it: all read at scrape time, nothing counted where it happens.
 */
export function registerMemoryMetrics(registers: Registry[], sources: () => MemorySources): void {
  new Gauge({
    name: 'tier_memory_unreclaimable_bytes',
    help: "Memory of the node's cgroup the kernel cannot reclaim (anonymous, kernel); hub handshakes are refused above TIER_SHED_MEMORY of the limit",
    registers,
    collect() {
      const read = sources().memory;
      if (read) this.set(read().unreclaimable);
    },
  });
  // totals kept as plain numbers where they happen, read at scrape time
  const scrapedTotal = (name: string, help: string, read: () => number | undefined) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        const total = read();
        if (total === undefined) return;
        this.reset();
        this.inc(total);
      },
    });
  scrapedTotal('tier_memory_collections_total', 'Full garbage collections the node made while refusing hub handshakes for memory (at most one per 5 s)', () => sources().heapReleases?.count);
  scrapedTotal('tier_memory_collection_seconds_total', 'Time (s) those collections held the event loop', () => sources().heapReleases?.seconds);
  // the log's own buffer is memory too: past LOG_BUFFER_MAX waiting for a stdout nobody reads, lines are dropped
  scrapedTotal('tier_log_dropped_lines_total', 'Log lines dropped because stdout was not read (a stalled log shipper) while 16 MiB of lines waited', droppedLogLines);
  scrapedTotal('tier_http_answers_refused_total', 'Large HTTP answers refused 503 busy: the answers waiting for their readers were at TIER_HTTP_PENDING_BYTES', () => sources().answers?.refused);
  new Gauge({
    name: 'tier_http_pending_answer_bytes',
    help: 'Bytes of large HTTP answers (exports, rules and scenes lists) the node holds until their readers take them; at most TIER_HTTP_PENDING_BYTES',
    registers,
    collect() {
      const answers = sources().answers;
      if (answers) this.set(answers.bytes);
    },
  });
  new Counter({
    name: 'tier_periodic_read_failures_total',
    help: "Reads of the node's own state on a timer or at a scrape that failed (kind: rss, cgroup; EMFILE at the open-file limit): skipped, never fatal",
    labelNames: ['kind'],
    registers,
    collect() {
      const counts = sources().readFailures;
      if (!counts) return;
      this.reset();
      for (const [kind, n] of Object.entries(counts)) this.inc({ kind }, n);
    },
  });
  // prom-client has the heap's size and use, not the old generation's limit: Node sets it at about half a pod's, and a node that reaches it dies (exit 134)
  new Gauge({
    name: 'tier_heap_limit_bytes',
    help: "80 % of V8's old generation limit (--max-old-space-size, else Node's choice: about half a cgroup's limit), where V8 ends a process whose collections free little; hub and app sockets are refused busy with tier_heap_used_bytes above TIER_SHED_MEMORY of it",
    registers,
    collect() {
      this.set(HEAP_LIMIT);
    },
  });
  new Gauge({
    name: 'tier_heap_used_bytes',
    help: "V8's old generation in use, garbage not yet collected included (the heap less its young generation, which never fills)",
    registers,
    collect() {
      this.set(heapReading().heapUsed);
    },
  });
  new Gauge({
    name: 'tier_memory_limit_bytes',
    help: "The node's cgroup memory limit (a pod's); 0: none (as cAdvisor's container_spec_memory_limit_bytes)",
    registers,
    collect() {
      const limit = sources().memory?.().limit;
      if (limit !== undefined) this.set(Number.isFinite(limit) ? limit : 0);
    },
  });
}
