// Jest runs the TypeScript tests as ESM (node --experimental-vm-modules, see package.json):
// @swc/jest strips types, and relative imports written with `.js` resolve to their `.ts` source.
// Type checking is `npm run lint` (tsc), a separate step in .ci/run.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  reporters: ['default', '<rootDir>/test/support/summary-reporter.cjs'],
  // No testTimeout here: test/support/jest-setup.ts sets the default per-test timeout from
  // test/support/deadlines.ts, where every deadline and timeout of the tests lives (scaled by
  // CONCORD_TEST_TIME_SCALE).
  setupFilesAfterEnv: ['<rootDir>/test/support/jest-setup.ts'],
  // A federation test that fails half-way (a cluster restarted but not started) can leave servers
  // and worker threads behind; CI must then end with its summary, not wait for them forever.
  forceExit: true,
};
