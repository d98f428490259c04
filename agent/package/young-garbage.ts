// Decrypting hands back a fresh 64 KiB buffer per chunk (node:crypto has no update-into-
// buffer), and V8 frees a buffer's memory only when it collects the small object that holds
// it. Those objects are few and small, so the young generation fills slowly and V8 waits for
// its external-memory threshold (~64 MiB) before collecting: the process grew by 25-40 MiB
// during a decrypting pass, and every freed block went back to the kernel and was faulted in
// again. A young-generation collection after each MiB of plaintext frees them while they are
// still in the allocator's hands (docs/decisions.md has the measurements).
//
// "In the allocator's hands" needs one more step: glibc's malloc gives the top of its heap
// back to the kernel as soon as more than its trim threshold (128 KiB until told otherwise)
// lies free there, and a minor collection frees a whole MiB of these buffers at once. When
// they happened to sit at the top, every MiB was handed back and faulted in again: 130-200
// thousand page faults and 4-7 s instead of ~3 s for a 1 GiB pass, in one run out of three or
// four. Freeing one block large enough to have been mmap'd makes glibc raise its thresholds
// to that block's size (mmap) and twice that (trim), for the rest of the process.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let collect: Collect | null | undefined;

/** V8's own gc(), taken once from a fresh context; null where this Node does not offer it. */
function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('typeof gc === "function" ? gc : null') as Collect | null;
    collect = gc;
  } catch {
    collect = null;
  }
  return collect;
}

let thresholdsRaised = false;

/** Once per process: allocate and free a 4 MiB block, so that glibc keeps up to 8 MiB of freed memory instead of trimming it. */
function raiseMallocThresholds(): void {
  if (thresholdsRaised) return;
  thresholdsRaised = true;
  Buffer.allocUnsafeSlow(4 * 1024 * 1024); // unreferenced: freed by the collection below
  collector()?.({ type: 'minor' });
}

/** Counts the bytes of short-lived buffers made and collects the young generation every `every` (1 MiB: one read of the package; 4 and 16 MiB left more to fault in again). */
export class YoungGarbage {
  private made = 0;

  constructor(private readonly every = 1024 * 1024) {
    raiseMallocThresholds();
  }

  /** Call when `bytes` of fresh buffers are no longer referenced. */
  dropped(bytes: number): void {
    this.made += bytes;
    if (this.made < this.every) return;
    this.made = 0;
    collector()?.({ type: 'minor' });
  }
}
