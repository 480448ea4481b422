// Lint rules that carry the house rules of ../shared/STYLE.md:
// - the sans-I/O cores never read the clock, timers, Math.random or performance, and import no
//   node: module or I/O library (the simulator must be able to drive them);
// - no import cycles anywhere;
// - only the Prometheus binding (src/observe/prometheus-*.ts) imports prom-client: everything else
//   reports to the small interface of src/observe/gateway-observer.ts or keeps plain stats.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const cores = ['src/core', 'src/crdt', 'src/mesh', 'src/admission', 'src/schedule', 'src/pool', 'src/engine'];

const impureGlobals = [
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'performance',
  'process',
  'require',
].map((name) => ({ name, message: 'Sans-I/O core: take time and scheduling as arguments or through an injected Clock.' }));

/**
 * The function-length ratchet (STYLE.md: functions under about 70 lines): a function longer than
 * `functionLinesMax` lines of code (blank and comment-only lines not counted) is an error unless
 * it is in `longFunctionsAllowed`, and an entry there whose function got short enough (or went)
 * is an error too, so the list may only shrink. A function is named `path:Class.method`,
 * `path:name` or, for an anonymous one, `path:(anonymous in <enclosing name>)`. The list is the
 * functions over the bound when the ratchet came in (issue 17), after the Prettier format.
 */
const functionLinesMax = 70;
const longFunctionsAllowed = new Set([
  'sim/report/html-report.ts:renderChart',
  'sim/scenario-file.ts:parseScenario',
  'sim/simulator.ts:Simulation.createNode',
  'src/local/local-mesh.ts:launch',
  'src/mesh/wire/counter-delta-codec.ts:readCounterDelta',
  'src/mesh/wire/key-table.ts:readKeyTable',
  'src/node/account-caller.ts:AccountCaller.call',
  'src/node/forward/forward-executor.ts:ForwardExecutor.run',
  'src/node/forward/forward-route.ts:upstreamResultOf',
  'src/node/gateway/region-gateway.ts:RegionGateway.start',
  'src/node/node-config.ts:parseNodeConfig',
  'src/node/run-node.ts:startNode',
  'src/upstream/emulator/emulator-server.ts:EmulatorServer.messages',
]);

function functionName(node) {
  const parent = node.parent;
  if (parent?.type === 'MethodDefinition' || parent?.type === 'Property' || parent?.type === 'PropertyDefinition') {
    const key = parent.key?.name ?? parent.key?.value ?? '(computed)';
    const owner = parent.parent?.parent?.id?.name;
    return owner === undefined ? key : `${owner}.${key}`;
  }
  if (node.id?.name !== undefined) return node.id.name;
  if (parent?.type === 'VariableDeclarator' && parent.id?.name !== undefined) return parent.id.name;
  for (let up = parent; up !== undefined && up !== null; up = up.parent) {
    if (up.type === 'FunctionDeclaration' || up.type === 'FunctionExpression' || up.type === 'ArrowFunctionExpression')
      return `(anonymous in ${functionName(up)})`;
  }
  return '(anonymous)';
}

const houseRules = {
  rules: {
    'function-length': {
      meta: { type: 'suggestion', schema: [] },
      create(context) {
        const source = context.sourceCode;
        const path = context.filename.slice(import.meta.dirname.length + 1);
        const codeLines = new Set();
        for (const token of source.ast.tokens) for (let line = token.loc.start.line; line <= token.loc.end.line; line++) codeLines.add(line);
        const seenLong = new Set();
        const check = (node) => {
          let lines = 0;
          for (let line = node.loc.start.line; line <= node.loc.end.line; line++) if (codeLines.has(line)) lines++;
          if (lines <= functionLinesMax) return;
          const name = `${path}:${functionName(node)}`;
          seenLong.add(name);
          if (!longFunctionsAllowed.has(name))
            context.report({ node, message: `${name} has ${lines} lines of code, over ${functionLinesMax}: split it (STYLE.md).` });
        };
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
          'Program:exit'(program) {
            for (const name of longFunctionsAllowed) {
              if (name.startsWith(`${path}:`) && !seenLong.has(name)) {
                context.report({
                  node: program,
                  message: `${name} is in longFunctionsAllowed but is no longer over ${functionLinesMax} lines: remove it from the list (it may only shrink).`,
                });
              }
            }
          },
        };
      },
    },
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX, house: houseRules },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  // Before the cores' block: for a core file that block's no-restricted-imports replaces this one,
  // and it forbids prom-client too.
  {
    files: ['src/**/*.ts', 'sim/**/*.ts'],
    ignores: ['src/observe/prometheus-*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'prom-client', message: 'Only the Prometheus binding (src/observe/prometheus-*.ts) imports prom-client; report to a metrics interface.' },
          ],
        },
      ],
    },
  },
  {
    files: cores.map((dir) => `${dir}/**/*.ts`),
    rules: {
      'no-restricted-globals': ['error', ...impureGlobals],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Sans-I/O core: use an injected Random.' },
        { object: 'Date', property: 'now', message: 'Sans-I/O core: use an injected Clock or a nowMs argument.' },
        { object: 'globalThis', property: 'setTimeout', message: 'Sans-I/O core: no timers.' },
        { object: 'globalThis', property: 'setInterval', message: 'Sans-I/O core: no timers.' },
        { object: 'globalThis', property: 'performance', message: 'Sans-I/O core: no clocks.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date']", message: 'Sans-I/O core: no clock reads; use an injected Clock.' },
        { selector: "CallExpression[callee.name='Date']", message: 'Sans-I/O core: no clock reads; use an injected Clock.' },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Sans-I/O core: no node: modules.' },
            {
              group: ['fs', 'net', 'http', 'https', 'http2', 'dgram', 'os', 'child_process', 'worker_threads', 'timers', 'timers/*', 'perf_hooks', 'crypto'],
              message: 'Sans-I/O core: no Node built-ins.',
            },
            {
              group: ['ws', '@grpc/*', 'better-sqlite3', 'prom-client'],
              message: 'Sans-I/O core: I/O libraries belong in src/net, src/ledger or src/observe.',
            },
          ],
        },
      ],
    },
  },
  // The product's code, not the tests: a test file's describe block is one long function by nature.
  {
    files: ['src/**/*.ts', 'sim/**/*.ts'],
    rules: { 'house/function-length': 'error' },
  },
  {
    files: ['test/**/*.ts', 'sim/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
