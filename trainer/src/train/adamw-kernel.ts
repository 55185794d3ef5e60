// AdamW's per-element update as a WebAssembly SIMD kernel: four float32 lanes per instruction,
// where a JavaScript loop computes one float64 element at a time (its sqrt and division bound
// it at ~6 ns per element; the kernel takes about a quarter of that with its copies, so a step of
// the 16M-parameter benchmark model spends ~30 ms instead of ~124 ms in the optimizer:
// docs/benchmarks.md). WebAssembly's float add, mul, div and sqrt are IEEE-exact, so the result
// is the same bits on every machine.
//
// The arrays stay where they are: WebAssembly reads only its own memory, and keeping the vectors
// there would cap a model at 4 GiB of state (and every other user of them would have to know).
// The kernel works through them in chunks copied into and out of its own small memory, which
// stays in cache; the copies cost less than the arithmetic they replace. The module is written
// out below as bytes: two functions, equivalent to
//
//   (func (export "sumOfSquares") (param $bytes i32) (result f64)
//     ;; Σ x[i]² over the first $bytes of memory, in four f32 lanes, the lanes added in f64)
//
//   (func (export "adamw") (param $bytes i32) (param $scale $beta1 $a1 $beta2 $a2 $stepSize $invSqrtC2 $eps $keep f32)
//     ;; memory: g at 0, m at $bytes, v at 2·$bytes, p at 3·$bytes (float32, $bytes a multiple of 16)
//     (loop  for i in 0, 16, … < $bytes, each parameter splatted to f32x4:
//       g = g[i]·scale
//       m[i] = beta1·m[i] + a1·g
//       v[i] = beta2·v[i] + a2·g·g
//       p[i] = p[i]·keep − stepSize·m[i] / (√v[i]·invSqrtC2 + eps)))

// TypeScript declares WebAssembly in its DOM library, which a Node project does not load; Node
// has it globally. What this file uses of it:
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};

/** Elements per array per chunk: 4 arrays × 64 KiB stay in a core's L2 cache. Also what one f32
 * lane of the squared norm sums at most (4096 values: a relative error near 1e-6, where the
 * chunks' sums are added in float64). */
const CHUNK = 16_384;

export interface AdamWStep {
  /** Gradient scale (clipping). */
  scale: number;
  beta1: number;
  beta2: number;
  /** lr / (1 − beta1^t). */
  stepSize: number;
  /** 1 / √(1 − beta2^t). */
  invSqrtC2: number;
  eps: number;
}

export class AdamWKernel {
  private readonly run: (bytes: number, ...values: number[]) => void;
  private readonly sumOfSquares: (bytes: number) => number;
  private readonly heap: Float32Array;

  constructor() {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(kernelModule()));
    const { adamw, sumOfSquares, memory } = instance.exports as {
      adamw: (bytes: number, ...values: number[]) => void; sumOfSquares: (bytes: number) => number; memory: { buffer: ArrayBuffer };
    };
    this.run = adamw;
    this.sumOfSquares = sumOfSquares;
    this.heap = new Float32Array(memory.buffer, 0, 4 * CHUNK);
  }

  /** Σ grads[i]², chunk by chunk, the chunks' sums added in float64 in index order. */
  squaredNorm(grads: Float32Array): number {
    const heap = this.heap;
    let total = 0;
    for (let s = 0; s < grads.length; s += CHUNK) {
      const n = Math.min(CHUNK, grads.length - s);
      const lanes = (n + 3) & ~3;
      heap.set(grads.subarray(s, s + n), 0);
      heap.fill(0, n, lanes);
      total += this.sumOfSquares(lanes * 4);
    }
    return total;
  }

  /** Updates m, v and params over [start, end) from grads, in place; decay multiplies θ by `keep`. */
  update(arrays: { params: Float32Array; grads: Float32Array; m: Float32Array; v: Float32Array }, start: number, end: number, keep: number, step: AdamWStep): void {
    const { params, grads, m, v } = arrays;
    const heap = this.heap;
    for (let s = start; s < end; s += CHUNK) {
      const n = Math.min(CHUNK, end - s);
      const lanes = (n + 3) & ~3; // whole f32x4 vectors; the padding is zeros, which stay finite
      heap.set(grads.subarray(s, s + n), 0);
      heap.set(m.subarray(s, s + n), lanes);
      heap.set(v.subarray(s, s + n), 2 * lanes);
      heap.set(params.subarray(s, s + n), 3 * lanes);
      if (lanes !== n) for (let k = 0; k < 4; k++) heap.fill(0, k * lanes + n, (k + 1) * lanes);
      this.run(lanes * 4, step.scale, step.beta1, 1 - step.beta1, step.beta2, 1 - step.beta2, step.stepSize, step.invSqrtC2, step.eps, keep);
      m.set(heap.subarray(lanes, lanes + n), s);
      v.set(heap.subarray(2 * lanes, 2 * lanes + n), s);
      params.set(heap.subarray(3 * lanes, 3 * lanes + n), s);
    }
  }
}

// ---------------------------------------------------------------- the module's bytes

const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;
/** SIMD opcodes (prefix 0xfd) of the WebAssembly 2.0 specification. */
const SIMD = { load: 0, store: 11, splat: 19, extractLane: 31, sqrt: 227, add: 228, sub: 229, mul: 230, div: 231 } as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'ascii')];
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const get = (local: number): number[] => [0x20, ...uleb(local)];
const set = (local: number): number[] => [0x21, ...uleb(local)];
const tee = (local: number): number[] => [0x22, ...uleb(local)];

/** `step` for i = 0, 16, 32, … while i < bytes (locals `bytes` and `i`, one f32x4 a step). */
function vectorLoop(bytes: number, i: number, step: number[]): number[] {
  return [
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(i), ...get(bytes), 0x4f, 0x0d, 1, // i >= bytes (i32.ge_u): br_if to the block's end
    ...step,
    ...get(i), 0x41, 16, 0x6a, ...set(i), 0x0c, 0, 0x0b, 0x0b, // i += 16; br to the loop; end, end
  ];
}

/** Σ x² over the first `bytes` of memory; locals 0 bytes, 1 i, 2 the four lanes' sums, 3 x. */
function sumOfSquaresCode(): number[] {
  const [BYTES, I, SUM, X] = [0, 1, 2, 3];
  const body = vectorLoop(BYTES, I, [...get(SUM), ...get(I), ...simd(SIMD.load), 4, 0, ...tee(X), ...get(X), ...simd(SIMD.mul), ...simd(SIMD.add), ...set(SUM)]);
  for (let lane = 0; lane < 4; lane++) {
    body.push(...get(SUM), ...simd(SIMD.extractLane), lane, 0xbb); // f32x4.extract_lane, f64.promote_f32
    if (lane > 0) body.push(0xa0); // f64.add
  }
  return [...vec([[...uleb(1), I32], [...uleb(2), V128]]), ...body, 0x0b];
}

function adamwCode(): number[] {
  // Locals: 0 bytes, 1…9 the f32 parameters, 10 i, 11…19 the parameters splatted, 20 g, 21 m, 22 v.
  const [BYTES, I, G, M, V] = [0, 10, 20, 21, 22];
  const splat = (param: number) => param + 10;
  const [SCALE, BETA1, A1, BETA2, A2, STEP, INV, EPS, KEEP] = [11, 12, 13, 14, 15, 16, 17, 18, 19] as const;
  /** Address of element i of array k: i + k·bytes. */
  const address = (k: number) => (k === 0 ? get(I) : [...get(I), ...get(BYTES), ...(k > 1 ? [0x41, k, 0x6c] : []), 0x6a]); // i32.const k, i32.mul, i32.add
  const load = (k: number) => [...address(k), ...simd(SIMD.load), 4, 0]; // align 2^4, offset 0
  const store = (k: number, value: number[]) => [...address(k), ...value, ...simd(SIMD.store), 4, 0];
  const op = (...ops: (keyof typeof SIMD)[]) => ops.flatMap((o) => simd(SIMD[o]));

  const body: number[] = [];
  for (let param = 1; param <= 9; param++) body.push(...get(param), ...simd(SIMD.splat), ...set(splat(param)));
  body.push(...vectorLoop(BYTES, I, [
    ...load(0), ...get(SCALE), ...op('mul'), ...set(G),
    ...store(1, [...load(1), ...get(BETA1), ...op('mul'), ...get(G), ...get(A1), ...op('mul', 'add'), ...tee(M)]),
    ...store(2, [...load(2), ...get(BETA2), ...op('mul'), ...get(G), ...get(G), ...op('mul'), ...get(A2), ...op('mul', 'add'), ...tee(V)]),
    ...store(3, [
      ...load(3), ...get(KEEP), ...op('mul'),
      ...get(STEP), ...get(M), ...op('mul'), ...get(V), ...op('sqrt'), ...get(INV), ...op('mul'), ...get(EPS), ...op('add', 'div', 'sub'),
    ]),
  ]));
  return [...vec([[...uleb(1), I32], [...uleb(12), V128]]), ...body, 0x0b];
}

function kernelModule(): Uint8Array {
  const functions = [adamwCode(), sumOfSquaresCode()];
  const pages = Math.ceil((4 * CHUNK * 4) / 65_536);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
    ...section(1, vec([
      [0x60, ...vec([[I32], ...Array.from({ length: 9 }, () => [F32])]), 0x00], // type 0: (i32, f32 × 9) → ()
      [0x60, ...vec([[I32]]), ...vec([[F64]])], // type 1: (i32) → f64
    ])),
    ...section(3, vec([[0], [1]])), // function 0 has type 0, function 1 type 1
    ...section(5, vec([[0x00, ...uleb(pages)]])), // memory: `pages` pages, no maximum
    ...section(7, vec([[...name('adamw'), 0x00, 0], [...name('sumOfSquares'), 0x00, 1], [...name('memory'), 0x02, 0]])), // exports
    ...section(10, vec(functions.map((code) => [...uleb(code.length), ...code]))), // code
  ]);
}
