// Runs in every test file before its tests (jest.config.js, setupFilesAfterEnv): the default
// per-test and per-hook timeout, from test/support/deadlines.ts with the rest.
import { jest } from '@jest/globals';
import { DEFAULT_TEST_MS } from './deadlines.js';

jest.setTimeout(DEFAULT_TEST_MS);
