// A small tensor graph that is built in TypeScript, differentiated by autodiff.ts and written
// out as ONNX by onnx.ts. Shapes are static and checked when an op is added, so a model that
// builds is a model whose shapes agree; ORT never sees a graph we could have rejected here.
//
// A Node is what autodiff sees: inputs, outputs and a gradient rule. What ORT sees is the list
// of ONNX nodes it emits: one for a primitive op, several for a composite (an op built from
// primitives that brings its own, cheaper gradient rule, e.g. GELU).

export type FloatDType = 'float32' | 'float64';
export type DType = FloatDType | 'int32' | 'int64' | 'bool';
export type Shape = readonly number[];

/** onnx.TensorProto.DataType codes: written into models and into Cast's `to` attribute. */
export const DTYPE_CODE: Readonly<Record<DType, number>> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** Where a tensor's value comes from: fed by the caller (input, param), stored in the model
 * (constant), or computed by a node. */
export type TensorKind = 'input' | 'param' | 'constant' | 'computed';

export class Tensor {
  /** The node that computes this tensor (for a composite: the composite), unset for leaves. */
  producer: Node | undefined;

  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly kind: TensorKind,
    /** The stored value of a constant. */
    readonly data?: TensorData,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  toString(): string {
    return `${this.name}: ${describeType(this)}`;
  }
}

export type Attr =
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string };

export const attr = {
  int: (value: number): Attr => ({ type: 'int', value }),
  ints: (value: readonly number[]): Attr => ({ type: 'ints', value }),
  float: (value: number): Attr => ({ type: 'float', value }),
  string: (value: string): Attr => ({ type: 'string', value }),
};

/** One ONNX node as it will be written: op type, tensors in and out, attributes. An input may
 * be undefined to skip an optional ONNX input (written as the empty name). */
export interface OnnxNode {
  readonly opType: string;
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Readonly<Record<string, Attr>>;
  /** The oldest opset that has this op in this form (absent: any opset toOnnx accepts). */
  readonly sinceOpset?: number;
}

/** Gradient rule: given the gradient of the loss with respect to each output (zeros where an
 * output is unused), return the gradient with respect to each input, built with graph ops.
 * `undefined` means "no gradient flows to this input" (indices, masks, stop-gradient). */
export type GradFn = (gradOutputs: readonly Tensor[], node: Node) => readonly (Tensor | undefined)[];

export interface Node {
  /** Name in error messages and in generated tensor names: the ONNX op type or composite name. */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly onnx: readonly OnnxNode[];
  /** Absent: the op is not differentiable, and autodiff refuses to pass a gradient through it. */
  readonly grad: GradFn | undefined;
}

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export interface OpSpec {
  /** ONNX op type, e.g. 'MatMul'. */
  readonly op: string;
  /** Tensor inputs in ONNX order; undefined skips an optional ONNX input. */
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly TensorType[];
  readonly attrs?: Readonly<Record<string, Attr>>;
  readonly grad?: GradFn;
  /** The oldest opset that has this op in this form, when newer than toOnnx's MIN_OPSET. */
  readonly sinceOpset?: number;
}

export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** Throws a ShapeError naming the op, what is wrong, and the inputs it was given. */
export function shapeError(op: string, problem: string, inputs: readonly Tensor[]): never {
  const given = inputs.map(describeType).join(', ');
  throw new ShapeError(`${op}: ${problem}; got ${given}`);
}

export function describeType(t: TensorType): string {
  return `${t.dtype}${formatShape(t.shape)}`;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sizeOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float64';
}

export interface GraphOptions {
  /** dtype of parameters and of the float constants that ops create: float32 to train,
   * float64 for finite-difference checks of the same model code. */
  readonly dtype?: FloatDType;
}

export class Graph {
  readonly dtype: FloatDType;
  /** Inputs and params in declaration order: what the caller feeds. */
  readonly inputs: Tensor[] = [];
  readonly params: Tensor[] = [];
  readonly constants: Tensor[] = [];
  /** Top-level nodes in creation order, which is a topological order. */
  private nodeList: Node[] = [];
  private readonly names = new Set<string>();
  private readonly constantCache = new Map<string, Tensor>();
  private counter = 0;

  constructor(options: GraphOptions = {}) {
    this.dtype = options.dtype ?? 'float32';
  }

  get nodes(): readonly Node[] {
    return this.nodeList;
  }

  /** A value fed at run time (token ids, targets). */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    const t = new Tensor(this, this.claim(name), dtype, checkShape('input', name, shape), 'input');
    this.inputs.push(t);
    return t;
  }

  /** A trainable parameter. It is a graph input too, so the trainer keeps all parameters in one
   * flat buffer and feeds views of it; nothing is baked into the model file. */
  param(name: string, shape: Shape): Tensor {
    const t = new Tensor(this, this.claim(name), this.dtype, checkShape('param', name, shape), 'param');
    this.inputs.push(t);
    this.params.push(t);
    return t;
  }

  /** A value stored in the model as an initializer. */
  constant(data: TensorData | readonly number[], dtype: DType, shape: Shape, name?: string): Tensor {
    checkShape('constant', name ?? '', shape, 0); // an empty int64 list is a valid shape argument
    const stored = toTypedArray(data, dtype);
    if (stored.length !== sizeOf(shape)) {
      throw new ShapeError(`constant ${name ?? ''}: ${stored.length} values do not fill shape ${formatShape(shape)}`);
    }
    const t = new Tensor(this, name === undefined ? this.fresh('const') : this.claim(name), dtype, [...shape], 'constant', stored);
    this.constants.push(t);
    return t;
  }

  /** A rank-0 constant, shared by every op that asks for the same value and dtype. */
  scalar(value: number, dtype: DType = this.dtype): Tensor {
    return this.cached(`${dtype}:${value}`, () => this.constant([value], dtype, []));
  }

  /** A 1-D int64 constant (shapes, axes, split sizes), shared like scalar(). */
  int64s(values: readonly number[]): Tensor {
    return this.cached(`int64s:${values.join(',')}`, () => this.constant(values, 'int64', [values.length]));
  }

  /** Adds one primitive ONNX node; returns its outputs. Ops in ops.ts call this after checking
   * shapes, so the node is known to be well-formed. */
  apply(spec: OpSpec): Tensor[] {
    const inputs = spec.inputs.filter((t): t is Tensor => t !== undefined);
    this.checkOwned(spec.op, inputs);
    const outputs = spec.outputs.map((o) => new Tensor(this, this.fresh(spec.op), o.dtype, [...o.shape], 'computed'));
    const onnx: OnnxNode = { opType: spec.op, inputs: spec.inputs, outputs, attrs: spec.attrs ?? {}, ...(spec.sinceOpset === undefined ? {} : { sinceOpset: spec.sinceOpset }) };
    const node: Node = { op: spec.op, inputs, outputs, onnx: [onnx], grad: spec.grad };
    for (const t of outputs) t.producer = node;
    this.nodeList.push(node);
    return outputs;
  }

  /** Whether some tensor of this graph is called `name`. */
  hasName(name: string): boolean {
    return this.names.has(name);
  }

  /** apply() for an op with one output. */
  op(spec: OpSpec): Tensor {
    if (spec.outputs.length !== 1) throw new Error(`${spec.op}: op() is for single-output ops`);
    return this.apply(spec)[0] as Tensor;
  }

  /** An op built from primitives with its own gradient rule: autodiff treats it as one node and
   * never looks inside. `forward` may create any nodes; the gradient rule may reuse tensors
   * computed inside (they are emitted with the composite). */
  composite(op: string, inputs: readonly Tensor[], forward: () => readonly Tensor[], grad: GradFn): Tensor[] {
    this.checkOwned(op, inputs);
    const outer = this.nodeList;
    const inner: Node[] = [];
    this.nodeList = inner;
    let outputs: readonly Tensor[];
    try {
      outputs = forward();
    } finally {
      this.nodeList = outer;
    }
    if (outputs.some((t) => t.kind !== 'computed')) throw new Error(`${op}: a composite must compute its outputs`);
    const onnx = inner.flatMap((n) => n.onnx);
    const node: Node = { op, inputs: [...inputs], outputs: [...outputs], onnx, grad };
    // Every tensor made inside (nested composites included) now belongs to this composite, so
    // pruning keeps it whole when a gradient rule reuses an inner tensor.
    for (const o of onnx) for (const t of o.outputs) t.producer = node;
    outer.push(node);
    return [...outputs];
  }

  private cached(key: string, make: () => Tensor): Tensor {
    let t = this.constantCache.get(key);
    if (t === undefined) {
      t = make();
      this.constantCache.set(key, t);
    }
    return t;
  }

  private checkOwned(op: string, inputs: readonly Tensor[]): void {
    for (const t of inputs) {
      if (t.graph !== this) throw new Error(`${op}: input ${t.name} belongs to another graph`);
    }
  }

  private claim(name: string): string {
    if (name === '') throw new Error('tensor names must not be empty');
    if (this.names.has(name)) throw new Error(`tensor name ${name} is already used in this graph`);
    this.names.add(name);
    return name;
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }
}

function checkShape(kind: string, name: string, shape: Shape, smallest = 1): number[] {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < smallest) throw new ShapeError(`${kind} ${name}: dimensions must be integers ≥ ${smallest}, got ${formatShape(shape)}`);
  }
  return [...shape];
}

function toTypedArray(data: TensorData | readonly number[], dtype: DType): TensorData {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    case 'float64':
      return data instanceof Float64Array ? data : Float64Array.from(data as ArrayLike<number>);
    case 'int32':
      return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    case 'int64':
      return data instanceof BigInt64Array ? data : BigInt64Array.from(data as ArrayLike<number>, (v) => BigInt(v));
    case 'bool':
      return data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>, (v) => (v ? 1 : 0));
  }
}
