import { describe, expect, it } from 'vitest';
import { scenarioFaults } from '../../load/chaos/options.js';

describe('npm run chaos --scenario', () => {
  it('names the faults of one scenario, of both and all, and of a comma list, in any order given', () => {
    expect([...(scenarioFaults('both', 'cluster') as Set<string>)]).toEqual(['kill', 'rolling']);
    expect([...(scenarioFaults('all', 'cluster') as Set<string>)]).toEqual(['kill', 'rolling', 'nats', 'redis', 'hang', 'freeze']);
    expect([...(scenarioFaults('freeze,nats,redis', 'cluster') as Set<string>)].sort()).toEqual(['freeze', 'nats', 'redis']);
    expect([...(scenarioFaults('kill,both', 'embedded') as Set<string>)]).toEqual(['kill', 'rolling']);
  });

  it('refuses a name it does not know, an empty item and a name of Object.prototype', () => {
    for (const s of ['nats,bogus', 'kill,', '', 'toString', 'kill,__proto__']) expect(scenarioFaults(s, 'cluster')).toMatch(/^--scenario must be/);
  });

  it('refuses faults of servers and a freeze in the embedded default, which has neither', () => {
    expect(scenarioFaults('kill,redis', 'embedded')).toMatch(/^--scenario redis needs cluster mode/);
    expect(scenarioFaults('hang', 'embedded')).toMatch(/^--scenario hang needs cluster mode/);
    expect(scenarioFaults('rolling,freeze', 'embedded')).toMatch(/^--scenario freeze needs cluster mode/);
  });
});
