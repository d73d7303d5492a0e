import { Counter, type Registry } from 'prom-client';

export interface TallyConfig {
  name: string;
  help: string;
  labelName: string;
  /** the label's values, by index (a value may repeat: its indexes count into one series) */
  values: readonly string[];
  registers: Registry[];
}

/**
 * A counter with one label of a fixed set of values, counted in a plain array where it is hot and
 * handed to prom-client when the counter is read (at each scrape, through its `collect` hook). A
 * prom-client child bound to its labels still builds the labels' hash and looks its series up on
 * every `inc`: a hub report made two or three such calls, a visible share of its CPU.
 */
export class Tally {
  private readonly counts: Float64Array;

  constructor(config: TallyConfig) {
    const counts = (this.counts = new Float64Array(config.values.length));
    const children: Counter.Internal[] = [];
    const counter = new Counter({
      name: config.name,
      help: config.help,
      labelNames: [config.labelName],
      registers: config.registers,
      collect() {
        for (let i = 0; i < counts.length; i++) {
          if (counts[i] === 0) continue;
          children[i]!.inc(counts[i]);
          counts[i] = 0;
        }
      },
    });
    for (const value of config.values) children.push(counter.labels(value));
  }

  /** Counts `n` under the value at `index` (an index out of range is a caller's bug: it throws). */
  add(index: number, n = 1): void {
    if (!(index >= 0 && index < this.counts.length)) throw new RangeError(`no label value at ${index}`);
    this.counts[index]! += n;
  }
}
