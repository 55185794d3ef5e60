// Dispatcher of the benchmarks: `npm run bench -- NAME [args]`, i.e. `node dist/bench/run.js NAME [args]`.
// Each benchmark is a module with `main(args)`; it is imported only when chosen, so listing the
// benchmarks, or running one, loads nothing the others need.

/** What a benchmark module exports. Returns the exit code (0 if omitted). */
export interface Benchmark {
  main(args: string[]): Promise<number | void>;
}

/** name → one-line description and module. A new benchmark adds one line here. */
const BENCHMARKS = new Map<string, { about: string; load: () => Promise<Benchmark> }>([
  ['codec', { about: 'SparseLoCo encode/decode MB/s on 64M float32 values vs copying them; compression ratio; bytes allocated per encode', load: () => import('./codec.js') }],
  ['data', { about: 'tokens/s the prepared-dataset loader delivers vs raw reads of the same files (goal ≥ 0.5×); peak RSS reading a 4 GiB dataset (goal ≤ 256 MiB above start)', load: () => import('./data.js') }],
  ['operator', { about: 'time for 500 TrainingRuns to settle vs a client writing the same objects (goal ≤ 1.5×); operator RSS with them cached (goal < 256 MiB)', load: () => import('./operator.js') }],
  ['round', { about: 'share of each outer round spent outside inner steps with 4 clusters (goal ≤ 10 %); coordinator peak RSS vs model size (goal ≤ 4× + payloads)', load: () => import('./round.js') }],
  ['trainer', { about: 'training-step FLOP/s vs the ORT MatMul peak (MFU-style) for a dModel=512 GPT and Llama; peak RSS vs its floor', load: () => import('./trainer.js') }],
  ['wire', { about: 'envelope seal+open per second; gRPC payload streaming vs raw TCP (64 MiB in 1–4 MiB chunks)', load: () => import('./wire.js') }],
]);

function usage(): string {
  const width = Math.max(...[...BENCHMARKS.keys()].map((name) => name.length));
  const lines = [...BENCHMARKS].map(([name, { about }]) => `  ${name.padEnd(width)}  ${about}`);
  return ['usage: npm run bench -- NAME [args]   (or: node dist/bench/run.js NAME [args])', '', 'benchmarks:', ...lines].join('\n');
}

const [name, ...args] = process.argv.slice(2);
const benchmark = name === undefined ? undefined : BENCHMARKS.get(name);
if (benchmark === undefined) {
  console.error(name === undefined ? 'no benchmark given' : `unknown benchmark "${name}"`);
  console.error(usage());
  process.exit(2);
}
const code = await (await benchmark.load()).main(args);
process.exitCode = code ?? 0;
