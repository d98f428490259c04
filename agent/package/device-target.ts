// Device targeting (docs/package-format.md, "Targeting"): [target] may name a device class
// (agent.toml's device_class) and a list of device IDs (device/identity.ts). A package that
// names neither is for any device; one that names both must match both. Pure check over the
// keys every package type shares.
import { CaissonError } from '../errors.js';
import type { DeviceTargetKeys } from './types.js';

/** Who this device is, as a package's [target] sees it. */
export interface DeviceContext {
  id: string;
  deviceClass: string;
}

/**
 * What a device that cannot say who it is counts as. Neither value fits the patterns a
 * manifest's device_class and device_ids must match, so it matches no targeted package.
 */
export const UNKNOWN_DEVICE: DeviceContext = { id: 'unknown', deviceClass: '(unknown)' };

/**
 * Refuse a package whose target names another device class or other devices. `device` is
 * asked only when the package targets devices, so an untargeted package never needs the
 * device's identity.
 */
export function checkDeviceTarget(manifest: { target?: DeviceTargetKeys | undefined }, device: () => DeviceContext): void {
  const { device_class: wantClass, device_ids: wantIds } = manifest.target ?? {};
  if (wantClass === undefined && wantIds === undefined) return;
  const me = device();
  const who = `this device (ID ${me.id}, class "${me.deviceClass}")`;
  if (wantClass !== undefined && wantClass !== me.deviceClass) {
    throw new CaissonError('manifest.not_for_this_device', `the package is for device class "${wantClass}", not for ${who}`);
  }
  if (wantIds !== undefined && !wantIds.includes(me.id)) {
    const named = wantIds.length === 1 ? `device ${wantIds[0]}` : `${wantIds.length} devices (${wantIds.slice(0, 3).join(', ')}${wantIds.length > 3 ? ', …' : ''})`;
    throw new CaissonError('manifest.not_for_this_device', `the package is for ${named}, not for ${who}`);
  }
}
