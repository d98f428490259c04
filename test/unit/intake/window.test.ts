import assert from 'node:assert/strict';
import { MaintenanceWindow } from '../../../agent/intake/window.js';
import { waitFor } from '../../support/intake-helpers.js';

describe('maintenance window', function () {
  this.timeout(30_000);

  it('is open for its length after each cron match, closed otherwise', async () => {
    const w = new MaintenanceWindow('0 2 * * *', 60 * 60_000, () => {});
    try {
      assert.equal(w.isOpen(new Date(2026, 2, 16, 1, 59, 59)), false);
      assert.equal(w.isOpen(new Date(2026, 2, 16, 2, 0, 0)), true);
      assert.equal(w.isOpen(new Date(2026, 2, 16, 2, 59, 0)), true);
      assert.equal(w.isOpen(new Date(2026, 2, 16, 3, 0, 0)), false);
      assert.equal(w.isOpen(new Date(2026, 2, 16, 14, 0, 0)), false);
    } finally {
      await w.stop();
    }
  });

  it('calls back when the window opens (real node-cron task)', async () => {
    // a 6-field expression that matches the first whole second at least 1.2 s from now, window 1 s long
    const at = new Date(Math.ceil((Date.now() + 1200) / 1000) * 1000);
    let opened = 0;
    const w = new MaintenanceWindow(`${at.getSeconds()} * * * * *`, 1000, () => opened++);
    try {
      assert.equal(w.isOpen(new Date(at.getTime() - 1500)), false);
      w.start();
      await waitFor(() => opened > 0, 'the window to open', 10_000);
      assert.equal(opened, 1);
      assert.equal(w.isOpen(new Date(Math.floor(at.getTime() / 1000) * 1000 + 500)), true);
    } finally {
      await w.stop();
    }
  });
});
