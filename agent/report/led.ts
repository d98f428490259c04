// The status LED, through the Linux sysfs LED class: each configured path is a folder
// like /sys/class/leds/NAME holding `trigger`, `brightness`, `delay_on`, `delay_off`
// (and `max_brightness`). Tests point it at a folder of plain files.
//   idle    → off              (trigger none, brightness 0)
//   working → slow blink       (trigger timer, 1000 ms on / 1000 ms off)
//   success → steady on        (trigger none, brightness max)
//   failure → fast blink       (trigger timer, 100 ms on / 100 ms off)
// A broken LED never stops an update: write errors are reported to the caller's log.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type LedState = 'idle' | 'working' | 'success' | 'failure';

export const LED_TIMINGS = {
  working: { on: 1000, off: 1000 },
  failure: { on: 100, off: 100 },
} as const;

export class Led {
  private current: LedState | undefined;

  constructor(
    private readonly paths: string[],
    private readonly onError: (path: string, err: unknown) => void = () => {},
  ) {}

  get state(): LedState | undefined {
    return this.current;
  }

  /** Show a state; writing the same state twice is skipped (a timer restart would flicker). */
  set(state: LedState): void {
    if (state === this.current) return;
    this.current = state;
    for (const path of this.paths) {
      try {
        writeLed(path, state);
      } catch (err) {
        this.onError(path, err);
      }
    }
  }
}

function writeLed(dir: string, state: LedState): void {
  const put = (name: string, value: string | number) => writeFileSync(join(dir, name), `${value}\n`);
  switch (state) {
    case 'idle':
      put('trigger', 'none');
      put('brightness', 0);
      return;
    case 'success':
      put('trigger', 'none');
      put('brightness', maxBrightness(dir));
      return;
    case 'working':
    case 'failure': {
      // the kernel creates delay_on/delay_off when the timer trigger is selected
      const t = LED_TIMINGS[state];
      put('trigger', 'timer');
      put('delay_on', t.on);
      put('delay_off', t.off);
      return;
    }
  }
}

function maxBrightness(dir: string): number {
  try {
    const n = Number.parseInt(readFileSync(join(dir, 'max_brightness'), 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : 1;
  } catch {
    return 1;
  }
}
