// Writes a Graph as an ONNX ModelProto. Only what the requested outputs need is written: nodes,
// constants, and inputs (so an inference model built from the training graph does not ask for
// targets). Feed a session exactly `session.inputNames`.

import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
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
import { DTYPE_CODE, type Attr, type Graph, type Node, type OnnxNode, type Tensor } from './graph.js';

/** The ops here use opset-18 forms (ReduceMean/ReduceSum axes and Split sizes as inputs, Pad
 * with an axes input); LayerNormalization needs 17. Newer opsets keep these forms. A node that
 * needs a newer opset says so (OnnxNode.sinceOpset, e.g. Gelu: 20) and raises the model's. */
export const MIN_OPSET = 18;
/** IR version 10 (ONNX 1.16) is read by onnxruntime 1.17 and later. */
export const IR_VERSION = 10n;

export interface ExportOptions {
  /** Graph outputs by name, e.g. { loss, 'grad.wte': g }. */
  readonly outputs: Readonly<Record<string, Tensor>>;
  /** Default: the oldest opset that has every op the outputs need (at least MIN_OPSET). */
  readonly opset?: number;
  readonly name?: string;
}

export function toOnnx(graph: Graph, options: ExportOptions): Uint8Array {
  if (options.opset !== undefined && options.opset < MIN_OPSET) throw new Error(`toOnnx: opset ${options.opset} is too old, need ${MIN_OPSET} or newer`);
  const requested = Object.entries(options.outputs);
  if (requested.length === 0) throw new Error('toOnnx: no outputs requested');
  for (const [name, t] of requested) {
    if (t.graph !== graph) throw new Error(`toOnnx: output ${name} belongs to another graph`);
  }

  const needed = neededNodes(requested.map(([, t]) => t));
  const newest = needed.flatMap((n) => n.onnx).reduce<OnnxNode | undefined>((a, o) => ((o.sinceOpset ?? 0) > (a?.sinceOpset ?? MIN_OPSET) ? o : a), undefined);
  const required = newest?.sinceOpset ?? MIN_OPSET;
  const opset = options.opset ?? required;
  if (opset < required) throw new Error(`toOnnx: opset ${opset} is too old for ${newest!.opType}, need ${required} or newer`);
  const used = new Set<Tensor>();
  for (const node of needed) for (const o of node.onnx) for (const t of o.inputs) if (t !== undefined) used.add(t);
  for (const [, t] of requested) used.add(t);

  // A computed tensor requested once is written under its output name directly; inputs,
  // constants and tensors requested twice go through an Identity node.
  const rename = new Map<Tensor, string>();
  const identities: NodeProto[] = [];
  const seen = new Set<string>();
  for (const [name, t] of requested) {
    const own = t.kind === 'computed' && t.name === name;
    if (seen.has(name) || (graph.hasName(name) && !own)) throw new Error(`toOnnx: output name ${name} is already used by another tensor of the graph`);
    seen.add(name);
    if (t.kind === 'computed' && !rename.has(t)) rename.set(t, name);
    else identities.push(create(NodeProtoSchema, { opType: 'Identity', input: [rename.get(t) ?? t.name], output: [name], name }));
  }
  const nameOf = (t: Tensor | undefined): string => (t === undefined ? '' : (rename.get(t) ?? t.name));

  const nodes: NodeProto[] = [];
  for (const node of needed) {
    for (const o of node.onnx) {
      nodes.push(
        create(NodeProtoSchema, {
          opType: o.opType,
          name: nameOf(o.outputs[0]),
          input: o.inputs.map(nameOf),
          output: o.outputs.map(nameOf),
          attribute: Object.entries(o.attrs).map(([name, a]) => attribute(name, a)),
        }),
      );
    }
  }

  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: 'concord',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: create(GraphProtoSchema, {
      name: options.name ?? 'concord',
      node: [...nodes, ...identities],
      input: graph.inputs.filter((t) => used.has(t)).map((t) => valueInfo(t.name, t)),
      initializer: graph.constants.filter((t) => used.has(t)).map(initializer),
      output: requested.map(([name, t]) => valueInfo(name, t)),
    }),
  });
  return toBinary(ModelProtoSchema, model);
}

/** Top-level nodes the outputs depend on, in graph order. */
function neededNodes(outputs: readonly Tensor[]): Node[] {
  const graph = outputs[0]?.graph;
  if (graph === undefined) return [];
  const needed = new Set<Node>();
  const stack = [...outputs];
  for (let t = stack.pop(); t !== undefined; t = stack.pop()) {
    const node = t.producer;
    if (node === undefined || needed.has(node)) continue;
    needed.add(node);
    // A composite's inner ONNX nodes may read tensors beyond its declared inputs (constants,
    // other nodes' outputs), so follow what its ONNX nodes read.
    for (const o of node.onnx) for (const x of o.inputs) if (x !== undefined) stack.push(x);
  }
  return graph.nodes.filter((n) => needed.has(n));
}

function valueInfo(name: string, t: Tensor): ValueInfoProto {
  const dims = t.shape.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } }));
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: DTYPE_CODE[t.dtype], shape: create(TensorShapeProtoSchema, { dim: dims }) }) },
    }),
  });
}

function initializer(t: Tensor): TensorProto {
  const data = t.data;
  if (data === undefined) throw new Error(`internal: constant ${t.name} has no data`);
  // raw_data is little-endian, as typed arrays are on every platform Node runs on.
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return create(TensorProtoSchema, { name: t.name, dataType: DTYPE_CODE[t.dtype], dims: t.shape.map(BigInt), rawData: raw });
}

function attribute(name: string, a: Attr): AttributeProto {
  switch (a.type) {
    case 'int':
      return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(a.value) });
    case 'ints':
      return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: a.value.map(BigInt) });
    case 'float':
      return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: a.value });
    case 'string':
      return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(a.value) });
  }
}
