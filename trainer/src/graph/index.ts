// The graph builder in one import: `import * as G from './graph/index.js'`.
// (gradcheck.ts is not re-exported: it loads onnxruntime.)
export * from './graph.js';
export * from './ops.js';
export * from './nn.js';
export { gradients } from './autodiff.js';
export { toOnnx, MIN_OPSET, type ExportOptions } from './onnx.js';
