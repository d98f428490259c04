import assert from 'node:assert/strict';
import { reportJson, reportText } from '../../../agent/report/format.js';
import type { UpdateResult } from '../../../agent/pipeline/types.js';

const result: UpdateResult = {
  update_id: 'u-1',
  outcome: 'committed',
  source: 'usb',
  package_file: '/media/x/web-1.1.0.edgepkg',
  service: 'web',
  to_version: '1.1.0',
  started_at: '2026-01-01T00:00:00Z',
  finished_at: '2026-01-01T00:00:05Z',
  steps: [],
};
const device = { id: 'k3xq-7h2m-pa4d-6wzt', public_key: Buffer.alloc(32, 9).toString('base64') };

describe('reports carry the device identity', () => {
  it('JSON: device.id and device.public_key', () => {
    const doc = JSON.parse(reportJson(result, { writtenAt: 'now', mediumUuid: 'AB-CD', device }));
    assert.deepEqual(doc.device, device);
    assert.equal(JSON.parse(reportJson(result, { writtenAt: 'now' })).device, undefined);
  });

  it('text: a line for the ID and one for the public key', () => {
    const text = reportText(result, { writtenAt: 'now', device });
    assert.match(text, /^Device ID: k3xq-7h2m-pa4d-6wzt$/m);
    assert.match(text, new RegExp(`^Device public key: ${device.public_key.replace(/[+/=]/g, '\\$&')} \\(X25519\\)$`, 'm'));
  });
});
