import { MemoryRuleStore } from '../../src/rules/rule-store-memory.js';
import { ruleStoreContract, type RuleStoreFactory } from './rule-store.contract.js';

/** Every RuleStore implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: RuleStoreFactory]> = [
  [
    'MemoryRuleStore',
    async () => {
      const store = new MemoryRuleStore();
      return { store, close: () => store.close() };
    },
  ],
];

for (const [name, make] of implementations) ruleStoreContract(name, make);
