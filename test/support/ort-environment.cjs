// Jest test environment for tests that run onnxruntime-node. Jest's node environment gives each
// test file its own realm, with its own typed-array constructors; onnxruntime's native binding
// checks tensors against the real ones and rejects the others ("must be type of Float32Array").
// Giving the test realm the outer constructors makes `new Float32Array(...)` in a test the kind
// onnxruntime accepts. Select it per file with the docblock
//   /** @jest-environment ./test/support/ort-environment.cjs */
// (a relative path is resolved against jest's rootDir, the repository root).
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) {
      if (name in globalThis) this.global[name] = globalThis[name];
    }
  }
}

module.exports = OrtEnvironment;
