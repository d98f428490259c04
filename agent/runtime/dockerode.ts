// dockerode, loaded without three modules it requires up front that Caisson never uses:
// @grpc/grpc-js and @grpc/proto-loader (BuildKit sessions) and ssh2 (ssh:// engines).
// Measured here they cost ~270 ms of CPU and ~17 MB of memory at every start of the CLI
// (more than the whole validation of a 10 MB package). They are put into the module cache
// as stand-ins that load the real module on first use, so nothing changes for code that
// does use them. Only the load is deferred; if they are loaded already, nothing is done.
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import type DockerodeClass from 'dockerode';

const require = createRequire(import.meta.url);

type Loader = () => Record<string | symbol, unknown>;

function defer(request: string, fromDir: string, standIn: (load: Loader) => object): void {
  let filename: string;
  try {
    filename = require.resolve(request, { paths: [fromDir] });
  } catch {
    return; // not installed where dockerode looks: let dockerode fail (or not) as it would
  }
  if (require.cache[filename]) return;
  let real: Record<string | symbol, unknown> | undefined;
  const load: Loader = () => {
    if (!real) {
      delete require.cache[filename];
      real = require(filename) as Record<string | symbol, unknown>;
    }
    return real;
  };
  const m = new Module(filename);
  m.filename = filename;
  m.loaded = true;
  m.exports = standIn(load);
  require.cache[filename] = m;
}

/** Forwards every access to the real module, loading it then. */
function lazyObject(load: Loader, eager: Record<string, unknown> = {}): object {
  return new Proxy(eager, {
    get: (t, k) => (k in t ? t[k as string] : Reflect.get(load(), k)),
    has: (t, k) => k in t || k in load(),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (_t, k) => {
      const d = Reflect.getOwnPropertyDescriptor(load(), k);
      if (d) d.configurable = true;
      return d;
    },
  });
}

const dockerodeDir = dirname(require.resolve('dockerode'));
defer('@grpc/grpc-js', dockerodeDir, (load) => lazyObject(load));
defer('@grpc/proto-loader', dockerodeDir, (load) => lazyObject(load));
try {
  const modemDir = dirname(require.resolve('docker-modem', { paths: [dockerodeDir] }));
  // docker-modem reads `require('ssh2').Client` when it loads: hand it a constructor that
  // loads ssh2 only when an ssh:// connection is actually made
  defer('ssh2', modemDir, (load) => {
    function Client(...args: unknown[]): object {
      const Real = load().Client as new (...a: unknown[]) => object;
      return new Real(...args);
    }
    return lazyObject(load, { Client });
  });
} catch {
  // docker-modem not found next to dockerode: nothing to defer
}

/** The dockerode class (use `import type Docker from 'dockerode'` for its types). */
export const Dockerode = require('dockerode') as typeof DockerodeClass;
