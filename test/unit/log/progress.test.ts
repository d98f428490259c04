// Progress output on a terminal (redrawn bars) and in logs/pipes (one line per finished phase).
import assert from 'node:assert/strict';
import { assertExcludes, assertIncludes } from '../../support/assert.js';
import { createProgress } from '../../../agent/log/progress.js';

const MiB = 1024 * 1024;

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY, columns: 120, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

describe('progress', function () {
  it('on a terminal redraws one bar per phase and ends it with a newline', function () {
    const { stream, text } = fakeStream(true);
    const p = createProgress(stream);
    p.bytes('staging', MiB, 4 * MiB);
    p.bytes('staging', 4 * MiB, 4 * MiB);
    const lines = text().split('\n');
    assert.equal(lines.length, 2); // one finished bar, then nothing
    assert.match(lines[0], /^\rstaging .*\r?staging +\[#{28}\] 100%  4\.0 MiB\/4\.0 MiB/);
  });

  it('on a terminal starts a new bar when the same phase starts over (the next layer)', function () {
    const { stream, text } = fakeStream(true);
    const p = createProgress(stream);
    p.bytes('unpacking', 3 * MiB, 8 * MiB);
    p.bytes('unpacking', 1 * MiB, 2 * MiB); // a second layer, its own bar
    p.done();
    const bars = text().split('\n').filter(Boolean);
    assert.equal(bars.length, 2);
    assertIncludes(bars[0], '3.0 MiB/8.0 MiB');
    assertIncludes(bars[1], '1.0 MiB/2.0 MiB');
    assertExcludes(bars[1], '8.0 MiB');
  });

  it('in a log writes one plain line per finished phase, each layer its own', function () {
    const { stream, text } = fakeStream(false);
    const p = createProgress(stream);
    p.bytes('unpacking', MiB, 2 * MiB);
    p.bytes('unpacking', 2 * MiB, 2 * MiB);
    p.bytes('unpacking', 3 * MiB, 3 * MiB);
    const lines = text().trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^unpacking: 2\.0 MiB in \d+\.\d s \(.+\/s\)$/);
    assert.match(lines[1], /^unpacking: 3\.0 MiB in /);
    assertExcludes(text(), '\r');
  });

  it('in a log names the layer, so two layers of the same size and speed are two different lines', function () {
    const { stream, text } = fakeStream(false);
    const p = createProgress(stream);
    p.bytes('unpacking', 2 * MiB, 2 * MiB, 'layer 3f83e09d5cd5');
    p.bytes('unpacking', 2 * MiB, 2 * MiB, 'layer 9b2a61c4e0f7');
    const lines = text().trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^unpacking layer 3f83e09d5cd5: 2\.0 MiB in /);
    assert.match(lines[1], /^unpacking layer 9b2a61c4e0f7: 2\.0 MiB in /);
  });

  it('on a terminal starts a new bar for the next layer even when it is already further along', function () {
    const { stream, text } = fakeStream(true);
    const p = createProgress(stream);
    p.bytes('unpacking', 1 * MiB, 8 * MiB, 'layer a');
    p.bytes('unpacking', 2 * MiB, 2 * MiB, 'layer b'); // done > the last layer's done: only the name tells them apart
    const bars = text().split('\n').filter(Boolean);
    assert.equal(bars.length, 2);
    assertIncludes(bars[0], 'unpacking layer a');
    assertIncludes(bars[1], 'unpacking layer b');
    assertIncludes(bars[1], '2.0 MiB/2.0 MiB');
  });

  it('in a log says nothing for a countdown: the health window\'s log line already gives its length', function () {
    const { stream, text } = fakeStream(false);
    const p = createProgress(stream);
    p.countdown('health', 20, '· not passing yet');
    p.countdown('health', 19.5, '· healthy for 0.5 of 4 s');
    p.done();
    assert.equal(text(), '');
  });

  it('is silent when disabled (--json)', function () {
    const { stream, text } = fakeStream(true);
    const p = createProgress(stream, false);
    p.bytes('staging', MiB, MiB);
    p.countdown('health', 5);
    assert.equal(text(), '');
  });
});
