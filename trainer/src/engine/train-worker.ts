// The worker thread of a trainer: owns the ORT sessions (whose run() blocks its thread), the
// dataset, the optimizer and the parameters. onnxruntime-node refuses tensors over shared memory
// ("Invalid argument"), so the parameters live here in ordinary memory and the main thread gets a
// copy when it asks ('read-params'); the AdamW moments, which ORT never sees, live in
// SharedArrayBuffers. Started by TrainerThread; speaks the messages of protocol.ts.
import { parentPort } from 'node:worker_threads';
import { assign, randomBatches, trainedSample, windowCount } from '../data/assign.js';
import type { Dataset, TokenSource } from '../data/dataset.js';
import { openDataset } from '../data/open.js';
import { buildModelGraph, decayRule, modelParamSpecs } from '../model/family.js';
import { layoutOf } from '../params.js';
import { AdamW } from '../train/adamw.js';
import type { TrainConfig } from '../train/config.js';
import { evaluate, evenlySpacedBatches, runInnerLoop, sequenceLosses } from '../train/inner-loop.js';
import type { ContributionLosses, FromWorker, ToWorker } from './protocol.js';
import { GraphRunner, openSession } from './session.js';

if (parentPort === null) throw new Error('train-worker.ts runs as a worker thread');
const port = parentPort;
const send = (message: FromWorker) => port.postMessage(message);

interface State {
  config: TrainConfig;
  dataset: Dataset;
  params: Float32Array;
  optimizer: AdamW;
  train: GraphRunner;
  loss: GraphRunner;
  validationBatches: number[][];
}
let state: State | undefined;

async function init(message: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  const { config } = message;
  const layout = layoutOf(modelParamSpecs(config.model));
  const params = message.params;
  const dataset = await openDataset(config);
  const options = { device: config.train.device, ...(config.train.threads !== undefined ? { threads: config.train.threads } : {}) };
  const { batch } = config.inner;
  const trainSession = await openSession(buildModelGraph(config.model, { batch, dtype: 'float32', outputs: 'train', gradients: 'per-tensor' }), options);
  const lossSession = await openSession(buildModelGraph(config.model, { batch, dtype: 'float32', outputs: 'loss' }), options);
  const { beta1, beta2, weightDecay, gradClip } = config.inner;
  state = {
    config, dataset, params,
    optimizer: new AdamW(layout, decayRule(config.model), { beta1, beta2, eps: 1e-8, weightDecay, gradClip }, {
      m: new Float32Array(message.m), v: new Float32Array(message.v), step: message.optimizerStep,
    }),
    train: new GraphRunner(trainSession.session, layout),
    loss: new GraphRunner(lossSession.session, layout),
    validationBatches: evenlySpacedBatches(dataset.validation.length, { batch, seqLen: config.model.seqLen, count: config.train.evalBatches }),
  };
  send({
    type: 'ready', provider: trainSession.provider, paramCount: layout.size,
    trainTokens: dataset.train.length, validationTokens: dataset.validation.length, unigramEntropy: unigramEntropy(dataset.train, config.model.vocabSize),
  });
}

async function train(message: Extract<ToWorker, { type: 'train' }>): Promise<void> {
  const s = ready();
  const { config } = s;
  const { batch } = config.inner;
  const seqLen = config.model.seqLen;
  // One peer, one replica: each epoch is one assignment round over every window of the corpus.
  const perEpoch = Math.max(1, Math.floor(windowCount(s.dataset.train.length, seqLen) / batch));
  const result = await runInnerLoop({
    runner: s.train, params: s.params, optimizer: s.optimizer,
    schedule: { lr: config.inner.lr, warmupSteps: config.inner.warmupSteps, decaySteps: config.train.steps, minLrRatio: config.inner.minLrRatio },
    firstStep: message.firstStep, batch, seqLen, tokens: s.dataset.train,
    offsets: (i) => {
      const tokens = s.dataset.train.length;
      // In a federation the coordinator says whose data this is (batches counted from the round's
      // start); alone, each epoch is one round of a single peer over every window.
      const a = message.assignment;
      if (a !== undefined) return assign({ ...a, batchSize: batch, seqLen, tokens, batches: 1, firstBatch: i })[0]!;
      const step = message.firstStep + i;
      return assign({
        runSeed: BigInt(config.seed), peers: ['local'], peerId: 'local', round: Math.floor(step / perEpoch), replica: 0, replicas: 1,
        batchSize: batch, seqLen, tokens, batches: 1, firstBatch: step % perEpoch,
      })[0]!;
    },
    ...(message.deadlineMs !== undefined ? { deadlineMs: message.deadlineMs } : {}),
    ...(message.maxSteps !== undefined ? { maxSteps: message.maxSteps } : {}),
    onProgress: (progress) => send({ type: 'progress', progress }),
  });
  send({ type: 'trained', result, optimizerStep: s.optimizer.step });
}

let scratch: Float32Array | undefined;

/**
 * Scores a contribution (Gauntlet, paired): each sequence's loss before and after
 * θ − step·decode(c), on a sample of the contributor's trained sequences and on control
 * sequences from the whole corpus, both drawn by the request's seed. Works on a scratch copy: the
 * trainer's parameters are left as they are.
 */
async function score(message: Extract<ToWorker, { type: 'score' }>): Promise<ContributionLosses> {
  const s = ready();
  const { batch } = s.config.inner;
  const seqLen = s.config.model.seqLen;
  if (message.base.length !== s.params.length) throw new Error(`score: the base has ${message.base.length} values, the model ${s.params.length}`);
  const tokens = s.dataset.train.length;
  const seed = Buffer.from(message.seed);
  const own = trainedSample({ ...message.assignment, batchSize: batch, seqLen, tokens, batches: message.batches, trained: message.trained, seed: Buffer.concat([seed, Buffer.from('own')]) });
  const control = randomBatches(Buffer.concat([seed, Buffer.from('control')]), { tokens, seqLen, batchSize: batch, batches: message.batches });
  const losses = (params: Float32Array, batches: number[][]) => sequenceLosses(s.loss, params, s.dataset.train, { batch, seqLen, batches });
  const ownBefore = await losses(message.base, own);
  const controlBefore = await losses(message.base, control);
  scratch ??= new Float32Array(s.params.length);
  scratch.set(message.base);
  const { indices, values, step } = message;
  for (let j = 0; j < indices.length; j++) scratch[indices[j]!] = scratch[indices[j]!]! - step * values[j]!;
  return { own: { before: ownBefore, after: await losses(scratch, own) }, control: { before: controlBefore, after: await losses(scratch, control) } };
}

const UNIGRAM_SAMPLE = 1 << 24;

function ready(): State {
  if (state === undefined) throw new Error('the trainer worker was not initialised');
  return state;
}

/** Entropy in nats of the token frequencies of `source` (its first UNIGRAM_SAMPLE tokens: a dataset may be larger than memory). */
function unigramEntropy(source: TokenSource, vocabSize: number): number {
  const tokens = source.subarray(0, Math.min(source.length, UNIGRAM_SAMPLE));
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < tokens.length; i++) counts[tokens[i]!]!++;
  let entropy = 0;
  for (const count of counts) if (count > 0) entropy -= (count / tokens.length) * Math.log(count / tokens.length);
  return entropy;
}

port.on('message', (message: ToWorker) => {
  const handle = async () => {
    switch (message.type) {
      case 'init': return init(message);
      case 'train': return train(message);
      case 'evaluate': {
        const s = ready();
        return send({ type: 'evaluated', loss: await evaluate(s.loss, s.params, s.dataset.validation, { batch: s.config.inner.batch, seqLen: s.config.model.seqLen, batches: s.validationBatches }) });
      }
      case 'read-params': {
        const copy = ready().params.slice();
        return port.postMessage({ type: 'params', params: copy } satisfies FromWorker, [copy.buffer as ArrayBuffer]);
      }
      case 'load-params': {
        // A round starts from the agreed base θ_r. The sessions keep feeding the same array; the
        // inner optimizer's moments carry over, as DiLoCo keeps them across rounds.
        const s = ready();
        if (message.params.length !== s.params.length) throw new Error(`load-params: got ${message.params.length} values, the model has ${s.params.length}`);
        s.params.set(message.params);
        return send({ type: 'params-loaded' });
      }
      case 'score': return send({ type: 'scored', losses: await score(message) });
      case 'close': return port.close();
    }
  };
  handle().catch((error: unknown) => send({ type: 'error', message: error instanceof Error ? error.message : String(error) }));
});
