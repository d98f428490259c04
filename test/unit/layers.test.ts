// The layers of agent/ point one way: a file imports only from its own folder or from a
// lower layer (docs/architecture.md draws them). This reads every import of every source
// file, static and dynamic, and names each one that points up.
import assert from 'node:assert/strict';
import { assertExcludes, assertIncludes } from '../support/assert.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYERS } from '../support/layers.js';

const AGENT = resolve(dirname(fileURLToPath(import.meta.url)), '../../agent');


function layerOf(unit: string): number {
  const i = LAYERS.findIndex((names) => names.includes(unit));
  if (i < 0) throw new Error(`agent/${unit} is in no layer: add it to LAYERS (and to docs/architecture.md)`);
  return i;
}

/** agent/<unit>/… → unit: the folder, or the file name for a top-level file. */
function unitOf(file: string): string {
  return relative(AGENT, file).split('/')[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

describe('layers of agent/', () => {
  it('every import points to the same folder or a lower layer', () => {
    const upward: string[] = [];
    for (const file of sourceFiles(AGENT)) {
      const from = unitOf(file);
      for (const target of importsOf(file)) {
        const to = unitOf(target);
        if (to === from) continue;
        if (layerOf(to) >= layerOf(from)) upward.push(`${relative(AGENT, file)} → ${relative(AGENT, target)}`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it('the pipeline reaches the engine only through the port: no driver, no mode (index.ts wires the real engine)', () => {
    const pipelineDir = join(AGENT, 'pipeline');
    const offending: string[] = [];
    for (const file of sourceFiles(pipelineDir)) {
      const text = readFileSync(file, 'utf8');
      for (const target of importsOf(file)) {
        const rel = relative(AGENT, target);
        if (/^runtime\/(docker-driver|compose-driver|image-load|image-tags)\.ts$/.test(rel)) offending.push(`${relative(AGENT, file)} imports ${rel}`);
        if (rel === 'runtime/docker-client.ts' && !file.endsWith('index.ts')) offending.push(`${relative(AGENT, file)} imports ${rel}`);
      }
      if (/\.mode\b|runtime_mode/.test(text)) offending.push(`${relative(AGENT, file)} names a runtime mode`);
    }
    assert.deepEqual(offending, []);
  });

  it('would catch an upward import (the check itself)', () => {
    assert.ok(layerOf('store') < layerOf('pipeline'));
    assertExcludes(importsOf(join(AGENT, 'store', 'journal.ts')).map(unitOf), 'pipeline');
    assertIncludes(importsOf(join(AGENT, 'pipeline', 'pipeline.ts')).map(unitOf), 'store');
  });
});
