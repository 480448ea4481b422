// Proves every test file under test/ opens with one short `// ` line on what it proves.
// STYLE.md (habit 11) asks that each test file open with a line on what it proves. A first line
// that runs on for hundreds of characters cannot be read in a file list, a diff or an editor
// without scrolling, so the rule is one `// ` line of at most 100 characters; the details, when
// there are any, follow as a comment paragraph wrapped at the same width.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const headCharsMax = 100;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const testDir = join(repoRoot, 'test');

/** Every `*.test.ts` file under test/ (property tests included), as repository-relative paths. */
function testFiles(): string[] {
  return readdirSync(testDir, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.test.ts'))
    .map((path) => join('test', path).split('\\').join('/'))
    .sort();
}

/** Why a file's first line breaks the rule, or undefined when it keeps it. */
function headProblem(firstLine: string): string | undefined {
  if (!firstLine.startsWith('// ')) return 'first line is not a `// ` comment';
  // Characters, not UTF-16 units: a `Σ` or `×` counts once.
  const chars = Array.from(firstLine).length;
  if (chars > headCharsMax) return `first line is ${chars} characters (at most ${headCharsMax})`;
  return undefined;
}

describe('test file heads', () => {
  it('judges a first line by its prefix and its length in characters', () => {
    expect(headProblem('// Proves the heap pops in priority order.')).toBeUndefined();
    expect(headProblem(`// ${'Σ'.repeat(headCharsMax - 3)}`)).toBeUndefined();
    expect(headProblem(`// ${'x'.repeat(headCharsMax - 2)}`)).toBe('first line is 101 characters (at most 100)');
    expect(headProblem("import { describe } from 'vitest';")).toBe('first line is not a `// ` comment');
    expect(headProblem('//Proves nothing readable.')).toBe('first line is not a `// ` comment');
    expect(headProblem('/* eslint-disable */')).toBe('first line is not a `// ` comment');
  });

  it('finds every test file open with one short comment line', () => {
    const files = testFiles();
    // The walk must see the tree: this very file and a property test among them.
    expect(files).toContain('test/house/test-file-heads.test.ts');
    expect(files.some((path) => path.endsWith('.prop.test.ts'))).toBe(true);
    const problems = files.flatMap((path) => {
      const firstLine = readFileSync(join(repoRoot, path), 'utf8').split('\n', 1)[0] ?? '';
      const problem = headProblem(firstLine.replace(/\r$/, ''));
      return problem === undefined ? [] : [`${path}: ${problem}`];
    });
    expect(problems).toEqual([]);
  });
});
