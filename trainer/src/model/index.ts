// The models: one entry point over the families (family.ts), the GPT (config.ts, gpt.ts) and the
// Llama family (llama-config.ts, llama.ts).
export * from './config.js';
export * from './gpt.js';
export * from './llama-config.js';
export * from './llama.js';
export * from './graph-io.js';
export * from './family.js';
export { philox4x32, fillNormal, streamOf, type Stream } from './random.js';
