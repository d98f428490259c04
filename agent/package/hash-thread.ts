// A SHA-256 computed on a worker thread, for the decrypting pass: the main thread decrypts
// and hashes the plaintext while the second core hashes the ciphertext (docs/decisions.md).
// The bytes are not copied: they sit in the reader's shared memory (source.ts ReadAhead), a
// buffer is read into again only after the worker has hashed it, so memory stays at the
// reader's few MiB whatever the entry's size. Work is handed over through a ring of
// (offset, length) pairs in shared memory and Atomics, not a message per piece (a message
// carrying shared memory cost ~0.15 ms each on the main thread). Where no worker can be
// started, or the entry is small, the digest is computed on the calling thread.
import { createHash, type Hash } from 'node:crypto';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { CaissonError, describe } from '../errors.js';

/** Entries smaller than this are hashed on the calling thread (a worker takes ~30-50 ms to start). */
export const HASH_THREAD_MIN_BYTES = 8 * 1024 * 1024;

/** Int32 slots of the control block: pieces posted, pieces hashed, then the ring. */
const POSTED = 0;
const DONE = 1;
const RING_AT = 4;
const RING = 256;
/** Ring lengths with a meaning of their own. */
const COPY = -1; // the bytes come as a message on the side port
const DIGEST = -2; // post the digest and stop
const STOP = -3;

/** Atomics.waitAsync (Node 16+; not in this project's TypeScript lib). */
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

// CommonJS run with eval, so no file is needed next to the compiled agent. It blocks in
// Atomics.wait between pieces; it has no event loop to keep.
const SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
const ctl = new Int32Array(workerData.ctl);
const mem = workerData.mem ? new Uint8Array(workerData.mem) : undefined;
let n = 0;
for (;;) {
  Atomics.wait(ctl, ${POSTED}, n);
  const posted = Atomics.load(ctl, ${POSTED});
  for (; n < posted; n++) {
    const at = ${RING_AT} + 2 * (n % ${RING});
    const off = ctl[at], len = ctl[at + 1];
    if (len >= 0) hash.update(mem.subarray(off, off + len));
    else if (len === ${COPY}) hash.update(receiveMessageOnPort(workerData.side).message);
    else if (len === ${DIGEST}) parentPort.postMessage(hash.digest('hex'));
    else process.exit(0);
    Atomics.store(ctl, ${DONE}, n + 1);
    Atomics.notify(ctl, ${DONE});
  }
}
`;

export class ThreadedHash {
  private readonly worker: Worker | undefined;
  private readonly inline: Hash | undefined;
  private readonly ctl: Int32Array | undefined;
  private readonly side: MessagePort | undefined;
  private posted = 0;
  /** Release callbacks of pieces posted and not yet seen hashed, oldest first; `released` pieces are behind them. */
  private readonly releases: ((() => void) | undefined)[] = [];
  private released = 0;
  private watching = false;
  private pendingDigest: { resolve: (hex: string) => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;

  /**
   * On a worker when `size` is at least `minBytes` and a worker starts; otherwise on this
   * thread. `memory`: the shared memory most pieces will be views into (hashed in place).
   */
  constructor(size: number, minBytes = HASH_THREAD_MIN_BYTES, private readonly memory?: SharedArrayBuffer) {
    if (size < minBytes) {
      this.inline = createHash('sha256');
      return;
    }
    const ctl = new SharedArrayBuffer(4 * (RING_AT + 2 * RING));
    const { port1, port2 } = new MessageChannel();
    let worker: Worker;
    try {
      // a small heap: it holds one hash state
      worker = new Worker(SOURCE, {
        eval: true,
        workerData: { ctl, mem: memory, side: port2 },
        transferList: [port2],
        resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
      });
    } catch {
      port1.close();
      this.inline = createHash('sha256');
      return;
    }
    this.worker = worker;
    this.ctl = new Int32Array(ctl);
    this.side = port1;
    port1.unref();
    worker.on('message', (digest: string) => {
      this.pendingDigest?.resolve(digest);
      this.pendingDigest = undefined;
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`the hashing thread exited (code ${code})`)));
  }

  /** True when the bytes are hashed on another thread (update() then needs them to stay put). */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /**
   * Hash `data`. On a worker a view into the shared memory is hashed in place and `release`
   * is called once it has been (the caller must not overwrite those bytes before); any other
   * buffer is copied. On this thread `release` is called at once.
   */
  update(data: Buffer, release?: () => void): void {
    if (this.inline) {
      this.inline.update(data);
      release?.();
      return;
    }
    if (this.failure) {
      release?.();
      throw this.failure;
    }
    if (this.memory && data.buffer === this.memory) {
      this.post(data.byteOffset, data.length, release);
    } else {
      this.side!.postMessage(data); // a copy
      this.post(0, COPY, undefined);
      release?.();
    }
  }

  async digest(): Promise<string> {
    if (this.inline) return this.inline.digest('hex');
    if (this.failure) throw this.failure;
    return new Promise<string>((resolve, reject) => {
      this.pendingDigest = { resolve, reject };
      this.post(0, DIGEST, undefined);
    });
  }

  /** End the worker (always; also after digest()). Held buffers are released. */
  close(): void {
    if (!this.worker) return;
    this.failure ??= new CaissonError('internal.error', 'the hashing thread was closed');
    this.pendingDigest?.reject(this.failure);
    this.worker.removeAllListeners('exit');
    if (!this.ringFull()) this.post(0, STOP, undefined);
    void this.worker.terminate().catch(() => undefined);
    this.side!.close();
    this.releaseAll();
    Atomics.notify(this.ctl!, DONE); // ends a pending watch
  }

  private post(off: number, len: number, release: (() => void) | undefined): void {
    const ctl = this.ctl!;
    if (this.ringFull()) {
      // only when the worker is 256 pieces behind; it is hashing, so wait for it here
      const deadline = Date.now() + 30_000;
      while (this.ringFull()) {
        if (Date.now() > deadline) throw this.fail(new Error('the hashing thread stopped taking work'));
        Atomics.wait(ctl, DONE, Atomics.load(ctl, DONE), 100);
      }
      this.pump();
    }
    const at = RING_AT + 2 * (this.posted % RING);
    ctl[at] = off;
    ctl[at + 1] = len;
    this.posted++;
    this.releases.push(release);
    Atomics.store(ctl, POSTED, this.posted);
    Atomics.notify(ctl, POSTED);
    this.watch();
  }

  private ringFull(): boolean {
    return this.posted - Atomics.load(this.ctl!, DONE) >= RING;
  }

  /** Release the buffers of the pieces the worker has hashed. */
  private pump(): void {
    if (this.failure) return;
    const done = Atomics.load(this.ctl!, DONE);
    while (this.released < done) {
      this.released++;
      this.releases.shift()?.();
    }
  }

  /** While pieces are out, wait (without blocking this thread) for the worker to finish one. */
  private watch(): void {
    if (this.watching || this.failure) return;
    for (;;) {
      this.pump();
      if (this.released === this.posted || this.failure) return;
      const w = waitAsync(this.ctl!, DONE, this.released);
      if (w.async) {
        this.watching = true;
        void w.value.then(() => {
          this.watching = false;
          this.watch();
        });
        return;
      }
    }
  }

  private fail(err: Error): Error {
    if (this.failure) return this.failure;
    this.failure = new CaissonError('internal.error', `hashing the encrypted image failed: ${describe(err)}`, { cause: err });
    this.pendingDigest?.reject(this.failure);
    this.releaseAll();
    return this.failure;
  }

  private releaseAll(): void {
    for (const r of this.releases.splice(0)) r?.();
  }
}
