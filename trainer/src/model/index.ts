// The GPT: configuration (config.ts), parameters, initialisation and ONNX graphs (gpt.ts).
export * from './config.js';
export * from './gpt.js';
export { philox4x32, fillNormal, streamOf, type Stream } from './random.js';
