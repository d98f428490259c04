import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Led } from '../../../agent/report/led.js';
import { readLed, removeTree, tempDir } from '../../support/intake-helpers.js';

describe('LED (sysfs LED class files)', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('caisson-led-');
  });
  afterEach(() => removeTree(dir));

  it('writes off, slow blink, steady on and fast blink to every configured LED', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(b, 'max_brightness'), '255\n');
    const led = new Led([a, b]);
    led.set('idle');
    assert.deepEqual(readLed(a), { trigger: 'none', brightness: '0' });
    led.set('working');
    assert.deepEqual(readLed(a), { trigger: 'timer', brightness: '0', delay_on: '1000', delay_off: '1000' });
    led.set('success');
    assert.equal(readLed(a).trigger, 'none');
    assert.equal(readLed(a).brightness, '1');
    assert.equal(readLed(b).brightness, '255', 'steady on uses max_brightness');
    led.set('failure');
    assert.deepEqual(readLed(b), { trigger: 'timer', brightness: '255', delay_on: '100', delay_off: '100' });
    assert.equal(led.state, 'failure');
  });

  it('reports a broken LED and carries on with the others', () => {
    const good = join(dir, 'good');
    mkdirSync(good);
    const errors: string[] = [];
    const led = new Led([join(dir, 'missing'), good], (path) => errors.push(path));
    led.set('working');
    assert.deepEqual(errors, [join(dir, 'missing')]);
    assert.equal(readLed(good).trigger, 'timer');
  });

  it('with no LED configured, does nothing', () => {
    const led = new Led([]);
    led.set('failure');
    assert.equal(led.state, 'failure');
  });
});
