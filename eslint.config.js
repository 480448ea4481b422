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

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
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
