import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ParamLayout } from '../params.js';

export type Device = 'auto' | 'cuda' | 'cpu';

export interface SessionOptions {
  /** 'auto' tries CUDA and falls back to the CPU (default). */
  device?: Device;
  /** Threads of the CPU execution provider (default: all cores ORT sees). */
  threads?: number;
}

/** An ORT session and the execution provider it actually runs on. */
export interface OpenedSession {
  session: ort.InferenceSession;
  provider: 'cuda' | 'cpu';
}

/**
 * Opens an ONNX model on the best execution provider available. The CUDA provider exists only
 * where onnxruntime-node was installed with its CUDA libraries (the trainer's GPU image); here
 * the CPU build answers, and that is what the caller logs.
 */
export async function openSession(model: Uint8Array, options: SessionOptions = {}): Promise<OpenedSession> {
  const device = options.device ?? 'auto';
  const common: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    // Without memory patterns (buffers planned from the first run and kept) a training step peaks
    // ~20% lower: 1.14 GB instead of 1.40 GB for the dModel=512 benchmark model. The arena stays:
    // turning it off too saved little more and cost ~10% of the step's speed (docs/benchmarks.md).
    enableMemPattern: false,
    ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
  };
  if (device === 'cuda' || (device === 'auto' && cudaProviderInstalled())) {
    try {
      return { session: await ort.InferenceSession.create(model, { ...common, executionProviders: ['cuda'] }), provider: 'cuda' };
    } catch (error) {
      if (device === 'cuda') throw new Error(`the CUDA execution provider is not available: ${(error as Error).message}`);
    }
  }
  return { session: await ort.InferenceSession.create(model, { ...common, executionProviders: ['cpu'] }), provider: 'cpu' };
}

/**
 * Whether onnxruntime-node's CUDA provider library was installed (by its install script with
 * CUDA enabled, as in the GPU image). Checked before trying it, because a failed attempt makes
 * ORT log an error that would alarm a reader of a CPU-only run.
 */
export function cudaProviderInstalled(): boolean {
  try {
    const packageRoot = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const bin = join(packageRoot, 'bin');
    return readdirSync(bin).some((napi) => existsSync(join(bin, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so')));
  } catch {
    return false;
  }
}

/**
 * Feeds a model whose parameters are graph inputs named as in the layout, from views of one flat
 * vector (ORT does not copy inputs), plus the other inputs it names.
 */
export class GraphRunner {
  private readonly paramNames: ReadonlySet<string>;
  private readonly inputs: ReadonlySet<string>;

  constructor(readonly session: ort.InferenceSession, readonly layout: ParamLayout) {
    this.paramNames = new Set(layout.tensors.map((t) => t.name));
    this.inputs = new Set(session.inputNames);
    const missing = session.inputNames.filter((name) => !this.paramNames.has(name) && name !== 'tokens' && name !== 'targets');
    if (missing.length > 0) throw new Error(`the model has inputs the trainer does not feed: ${missing.join(', ')}`);
  }

  /**
   * Runs the model. `fetches` are preallocated output tensors: ORT writes into their buffers
   * (read those buffers, not the returned tensors) instead of allocating new ones every run.
   */
  async run(params: Float32Array, extra: Record<string, ort.Tensor>, fetches?: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of this.layout.tensors) {
      // The model may not use every parameter (e.g. an inference graph); feed only its inputs.
      if (!this.inputs.has(t.name)) continue;
      feeds[t.name] = new ort.Tensor('float32', params.subarray(t.offset, t.offset + t.size), t.shape);
    }
    for (const [name, tensor] of Object.entries(extra)) if (this.inputs.has(name)) feeds[name] = tensor;
    return fetches === undefined ? this.session.run(feeds) : this.session.run(feeds, fetches);
  }
}
