// The state table itself: well-formed, and the rules run(), recovery and the "has the
// service been touched" check read from it.
import { expect } from 'chai';
import { mayMove, parseState, recoveryFor, STATE_TABLE, STATES, touchedService } from '../../../agent/pipeline/states.js';

describe('pipeline state table', () => {
  it('lists every state once, each going only to known states or closed, and each able to close', () => {
    expect(new Set(STATES).size).to.equal(STATES.length);
    expect(Object.keys(STATE_TABLE)).to.deep.equal([...STATES]);
    for (const s of STATES) {
      for (const n of STATE_TABLE[s].next) expect(n === 'closed' || (STATES as readonly string[]).includes(n), `${s} → ${n}`).to.equal(true);
      expect(STATE_TABLE[s].next, s).to.include('closed');
    }
  });

  it('reads a driver sub-step as part of its state, and nothing else', () => {
    expect(parseState('switching.park_old')).to.deep.equal({ state: 'switching', step: 'park_old' });
    expect(parseState('committing')).to.deep.equal({ state: 'committing' });
    expect(parseState('switchin.park_old')).to.equal(undefined);
    expect(parseState('closed:committed')).to.equal(undefined);
  });

  it('allows the moves of the table (and re-entering a state), refuses the others', () => {
    expect(mayMove('received', 'staged')).to.equal(true);
    expect(mayMove('switching.start_new', 'health_checking')).to.equal(true);
    expect(mayMove('rolling_back.unpark_old', 'rolling_back'), 'recovery re-enters').to.equal(true);
    expect(mayMove('health_checking', 'rolling_back')).to.equal(true);
    expect(mayMove('validated', 'switching'), 'no switch without an import').to.equal(false);
    expect(mayMove('committing', 'rolling_back'), 'a proven version is never rolled back').to.equal(false);
    expect(mayMove('rolling_back', 'committing')).to.equal(false);
    expect(mayMove('nonsense', 'closed')).to.equal(false);
  });

  it('says the service may be touched from the switch on, and for any state it does not know', () => {
    expect(STATES.filter((s) => touchedService(s))).to.deep.equal(['switching', 'health_checking', 'committing', 'rolling_back']);
    expect(touchedService('teleporting')).to.equal(true);
    expect(recoveryFor('teleporting')).to.equal(undefined);
  });
});
