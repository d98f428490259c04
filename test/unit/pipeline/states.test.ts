// The state table itself: well-formed, and the rules run(), recovery and the "has the
// service been touched" check read from it.
import assert from 'node:assert/strict';
import { assertIncludes } from '../../support/assert.js';
import { mayMove, parseState, recoveryFor, STATE_TABLE, STATES, touchedService } from '../../../agent/pipeline/states.js';

describe('pipeline state table', () => {
  it('lists every state once, each going only to known states or closed, and each able to close', () => {
    assert.equal(new Set(STATES).size, STATES.length);
    assert.deepEqual(Object.keys(STATE_TABLE), [...STATES]);
    for (const s of STATES) {
      for (const n of STATE_TABLE[s].next) assert.equal(n === 'closed' || (STATES as readonly string[]).includes(n), true, `${s} → ${n}`);
      assertIncludes(STATE_TABLE[s].next, 'closed', s);
    }
  });

  it('reads a driver sub-step as part of its state, and nothing else', () => {
    assert.deepEqual(parseState('switching.park_old'), { state: 'switching', step: 'park_old' });
    assert.deepEqual(parseState('committing'), { state: 'committing' });
    assert.equal(parseState('switchin.park_old'), undefined);
    assert.equal(parseState('closed:committed'), undefined);
  });

  it('allows the moves of the table (and re-entering a state), refuses the others', () => {
    assert.equal(mayMove('received', 'staged'), true);
    assert.equal(mayMove('switching.start_new', 'health_checking'), true);
    assert.equal(mayMove('rolling_back.unpark_old', 'rolling_back'), true, 'recovery re-enters');
    assert.equal(mayMove('health_checking', 'rolling_back'), true);
    assert.equal(mayMove('validated', 'switching'), false, 'no switch without an import');
    assert.equal(mayMove('committing', 'rolling_back'), false, 'a proven version is never rolled back');
    assert.equal(mayMove('rolling_back', 'committing'), false);
    assert.equal(mayMove('nonsense', 'closed'), false);
  });

  it('says the service may be touched from the switch on, and for any state it does not know', () => {
    assert.deepEqual(STATES.filter((s) => touchedService(s)), ['switching', 'health_checking', 'committing', 'rolling_back']);
    assert.equal(touchedService('teleporting'), true);
    assert.equal(recoveryFor('teleporting'), undefined);
  });
});
