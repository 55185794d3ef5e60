// A small writer of ONNX inference graphs whose inputs have named (dynamic) dimensions, for the
// exported decoder: batch, sequence and cache lengths vary per call there, while the training
// graphs (trainer/src/graph) are built for fixed shapes and differentiated. No autodiff, no shape
// inference: each method appends one node and returns the name of its output.
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { IR_VERSION, MIN_OPSET } from '../graph/onnx.js';

/** A dimension: a fixed size, or a name shared by every dimension of that size (`batch_size`). */
export type Dim = number | string;
export type ElemType = 'float32' | 'int64' | 'bool';
const ELEM_CODE: Readonly<Record<ElemType, number>> = { float32: 1, int64: 7, bool: 9 };

/** An attribute value; ints and floats are told apart by the wrapper, not by the number. */
export type AttrValue = { int: number } | { ints: readonly number[] } | { float: number };

/** The training graphs' opset and IR version (opset 18: ReduceMean axes and Split sizes are
 * inputs); every op the decoder uses exists there. */
const OPSET = BigInt(MIN_OPSET);

/** Where the weights go: inside the .onnx file while they fit protobuf's 2 GiB limit with room to
 * spare, else beside it in files of at most `chunkBytes` each (ONNX external data), named
 * `<file>_data`, `<file>_data_1`, … as transformers.js looks for them. */
export interface WeightPlacement {
  /** The .onnx file's name, which names the data files. */
  fileName: string;
  /** Weights above this many bytes in all go to external files. Default 1.5 GiB. */
  inlineLimitBytes?: number;
  /** Size limit of one data file (a tensor larger than this gets a file to itself). Default 1.5 GiB. */
  chunkBytes?: number;
}

export interface OnnxFiles {
  /** The model file. */
  model: Uint8Array;
  /** External data files in order (empty when the weights are inside), each as byte chunks. */
  data: { name: string; chunks: Uint8Array[] }[];
}

const DEFAULT_LIMIT = 1.5 * 2 ** 30;
/** External tensors start at multiples of this (the page size, so a reader may map them). */
const EXTERNAL_ALIGNMENT = 4096;

export class OnnxGraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  /** Weights, kept as views until toFiles decides where they go. */
  private readonly weights: { name: string; dims: readonly number[]; data: Float32Array }[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  /** A graph input. */
  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), type, dims));
    return name;
  }

  /** Declares `value` (a computed tensor) a graph output named `name`. */
  output(name: string, value: string, type: ElemType, dims: readonly Dim[]): void {
    this.op('Identity', [value], {}, name);
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A float32 initializer (weights are stored in the file, little-endian). */
  floats(name: string, data: Float32Array, dims: readonly number[]): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`onnx: initializer ${name} has ${data.length} values for shape [${dims.join(', ')}]`);
    this.weights.push({ name: this.claim(name), dims, data });
    return name;
  }

  /** A small int64 constant: a scalar for a number, a vector for an array. */
  ints(values: number | readonly number[]): string {
    const list = typeof values === 'number' ? [values] : values;
    const name = this.claim(`const_i64_${this.counter++}`);
    this.initializers.push(create(TensorProtoSchema, { name, dataType: ELEM_CODE.int64, dims: typeof values === 'number' ? [] : [BigInt(list.length)], int64Data: list.map(BigInt) }));
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    const name = this.claim(`const_f32_${this.counter++}`);
    this.initializers.push(create(TensorProtoSchema, { name, dataType: ELEM_CODE.float32, dims: [], floatData: [value] }));
    return name;
  }

  /** One node; returns its (first) output's name, `output` when given. */
  op(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, output?: string): string {
    return this.opMulti(opType, inputs, 1, attrs, output === undefined ? undefined : [output])[0]!;
  }

  /** A node with `count` outputs (Split). */
  opMulti(opType: string, inputs: readonly string[], count: number, attrs: Readonly<Record<string, AttrValue>> = {}, outputs?: readonly string[]): string[] {
    const names = (outputs ?? Array.from({ length: count }, (_, i) => `${opType.toLowerCase()}_${this.counter}${count > 1 ? `_${i}` : ''}`)).map((n) => this.claim(n));
    this.counter++;
    this.nodes.push(create(NodeProtoSchema, { opType, name: names[0], input: [...inputs], output: names, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) }));
    return names;
  }

  /** The model, and its weights inside it or in external data files (see WeightPlacement). */
  toFiles(graphName: string, placement: WeightPlacement): OnnxFiles {
    const total = this.weights.reduce((sum, w) => sum + w.data.byteLength, 0);
    const external = total > (placement.inlineLimitBytes ?? DEFAULT_LIMIT);
    const chunkBytes = placement.chunkBytes ?? DEFAULT_LIMIT;
    const data: OnnxFiles['data'] = [];
    let file: { name: string; chunks: Uint8Array[]; size: number } | undefined;
    const weights = this.weights.map(({ name, dims, data: values }) => {
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      const common = { name, dataType: ELEM_CODE.float32, dims: dims.map(BigInt) };
      // raw_data is little-endian, as typed arrays are on every platform Node runs on.
      if (!external) return create(TensorProtoSchema, { ...common, rawData: bytes.slice() });
      let padding = file === undefined ? 0 : (EXTERNAL_ALIGNMENT - (file.size % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
      if (file === undefined || (file.size > 0 && file.size + padding + bytes.length > chunkBytes)) {
        const name = `${placement.fileName}_data${data.length === 0 ? '' : `_${data.length}`}`;
        file = { name, chunks: [], size: 0 };
        data.push(file);
        padding = 0;
      }
      if (padding > 0) file.chunks.push(new Uint8Array(padding));
      const offset = file.size + padding;
      file.chunks.push(bytes);
      file.size = offset + bytes.length;
      const entry = (key: string, value: string | number) => create(StringStringEntryProtoSchema, { key, value: String(value) });
      return create(TensorProtoSchema, {
        ...common,
        dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: [entry('location', file.name), entry('offset', offset), entry('length', bytes.length)],
      });
    });
    const model = create(ModelProtoSchema, {
      irVersion: IR_VERSION,
      producerName: 'concord',
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: OPSET })],
      graph: create(GraphProtoSchema, { name: graphName, node: this.nodes, initializer: [...weights, ...this.initializers], input: this.inputs, output: this.outputs }),
    });
    return { model: toBinary(ModelProtoSchema, model), data: data.map(({ name, chunks }) => ({ name, chunks })) };
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`onnx: the name ${name} is used twice`);
    this.names.add(name);
    return name;
  }
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } }));
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, { value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: ELEM_CODE[type], shape: create(TensorShapeProtoSchema, { dim }) }) } }),
  });
}

function attribute(name: string, a: AttrValue): AttributeProto {
  if ('int' in a) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(a.int) });
  if ('ints' in a) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: a.ints.map(BigInt) });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: a.float });
}
