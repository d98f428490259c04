// Once per mocha run (.mocharc.json "require"): compile the stick's child process
// (agent/report/stick-child.ts and the one module it imports) to plain JavaScript, so each
// stick job the tests run starts a bare node (~0.15 s) instead of node plus tsx (~0.5 s).
// agent/report/stick-io.ts takes it from CAISSON_STICK_CHILD when running from source.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';

const SOURCES = ['agent/report/stick-child.ts', 'agent/report/stick-fs.ts'];
let outDir: string | undefined;

export function mochaGlobalSetup(): void {
  if (process.env.CAISSON_STICK_CHILD) return; // given by whoever started mocha
  outDir = mkdtempSync(join(tmpdir(), 'caisson-stick-child-'));
  writeFileSync(join(outDir, 'package.json'), '{"type":"module"}\n');
  for (const src of SOURCES) {
    const { outputText } = ts.transpileModule(readFileSync(src, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: src,
    });
    const name = src.split('/').pop()!.replace(/\.ts$/, '.js');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, name), outputText);
  }
  process.env.CAISSON_STICK_CHILD = join(outDir, 'stick-child.js');
}

export function mochaGlobalTeardown(): void {
  if (!outDir) return;
  rmSync(outDir, { recursive: true, force: true });
  delete process.env.CAISSON_STICK_CHILD;
}
