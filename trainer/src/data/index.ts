// Data for the trainer: the Brown corpus as text, a byte-level BPE, packed token arrays with a
// train/validation split, and the deterministic assignment of training windows to peers.
export * from './assign.js';
export * from './bpe.js';
export * from './corpus.js';
export * from './dataset.js';
