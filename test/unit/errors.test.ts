import { expect } from 'chai';
import { CaissonError, ERROR_CODES, toCaissonError } from '../../agent/errors.js';

describe('error codes', function () {
  it('are stable dotted names, each with a next step', function () {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(code).to.match(/^[a-z]+\.[a-z0-9_]+$/);
      expect(info.next, code).to.be.a('string').and.have.length.greaterThan(10);
    }
  });

  it('keeps a CaissonError as it is', function () {
    const err = new CaissonError('policy.downgrade', 'older');
    expect(toCaissonError(err)).to.equal(err);
    expect(err.toJSON()).to.deep.equal({ code: 'policy.downgrade', message: 'older', next: ERROR_CODES['policy.downgrade'].next });
  });

  it('maps a refused engine socket to docker.unreachable', function () {
    const sys = Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
    expect(toCaissonError(sys).code).to.equal('docker.unreachable');
    const missing = Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' });
    expect(toCaissonError(missing).code).to.equal('docker.unreachable');
  });

  it('maps anything else to the fallback code with the first line of its message', function () {
    const mapped = toCaissonError(new Error('first line\nsecond line'), 'service.start_failed');
    expect(mapped.code).to.equal('service.start_failed');
    expect(mapped.message).to.equal('first line');
  });
});
