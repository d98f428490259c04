// Progress for long steps: a redrawn bar (bytes, rate, countdown) on a terminal; otherwise
// one plain line when a byte phase ends, so logs and pipes stay readable.
export interface Progress {
  /**
   * Bytes done of total for a named phase; call with done === total at the end. part names
   * which piece of the phase this is (an image layer), so two equal pieces read apart.
   */
  bytes(phase: string, done: number, total: number, part?: string): void;
  /** A countdown (health window). */
  countdown(phase: string, secondsLeft: number, note?: string): void;
  /** Finish whatever bar is drawn. */
  done(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, enabled = true): Progress {
  if (!enabled) return { bytes() {}, countdown() {}, done() {} };
  return stream.isTTY ? new TtyProgress(stream) : new PlainProgress(stream);
}

class TtyProgress implements Progress {
  private current?: string;
  private started = 0;
  private startDone = 0;
  private lastDraw = 0;
  private lastDone = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  bytes(phase: string, done: number, total: number, part?: string): void {
    const label = part ? `${phase} ${part}` : phase;
    if (this.current !== label || done < this.lastDone) {
      this.enter(label, true); // a new phase, or the same one over again (the next layer)
      // the first report comes after the first chunk: measure the rate from here on
      this.startDone = done;
    }
    this.lastDone = done;
    const t = Date.now();
    if (done < total && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    const width = 28;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const fill = Math.round(frac * width);
    const secs = (t - this.started) / 1000;
    const rate = secs >= 0.1 ? formatBytes((done - this.startDone) / secs) + '/s' : '';
    this.draw(`${label.padEnd(9)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)}/${formatBytes(total)}  ${rate}`);
    if (done >= total) this.done();
  }

  countdown(phase: string, secondsLeft: number, note = ''): void {
    this.enter(phase);
    this.draw(`${phase.padEnd(9)} ${Math.ceil(secondsLeft)} s left ${note}`);
  }

  done(): void {
    if (this.current) this.stream.write('\n');
    this.current = undefined;
  }

  private enter(phase: string, again = false): void {
    if (this.current === phase && !again) return;
    this.done();
    this.current = phase;
    this.started = Date.now();
    this.lastDraw = 0;
  }

  private draw(line: string): void {
    const cols = this.stream.columns || 100;
    // carriage return, the line cut to the terminal width, then erase what a longer previous line left
    this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
  }
}

class PlainProgress implements Progress {
  private current?: string;
  private started = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  bytes(phase: string, done: number, total: number, part?: string): void {
    const label = part ? `${phase} ${part}` : phase;
    if (this.current !== label) {
      this.current = label;
      this.started = Date.now();
    }
    if (done >= total) {
      const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
      this.stream.write(`${label}: ${formatBytes(total)} in ${secs.toFixed(1)} s (${formatBytes(total / secs)}/s)\n`);
      this.current = undefined;
    }
  }

  countdown(): void {
    // nothing to add: the log line that starts a health window already says how long it
    // may last, and the result says how it ended (each fact once)
  }

  done(): void {
    this.current = undefined;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
