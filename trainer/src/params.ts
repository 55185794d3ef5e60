/**
 * Parameters live in one flat Float32Array; a layout names the tensors in it, in order. The codec
 * and the outer step work on the flat vector, the model graph on named views of it.
 */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface LaidOutTensor extends TensorSpec {
  /** Offset in the flat vector, in elements. */
  readonly offset: number;
  /** Number of elements. */
  readonly size: number;
}

export interface ParamLayout {
  readonly tensors: readonly LaidOutTensor[];
  /** Total number of elements. */
  readonly size: number;
}

export function layoutOf(specs: readonly TensorSpec[]): ParamLayout {
  const names = new Set<string>();
  let offset = 0;
  const tensors = specs.map((spec) => {
    if (names.has(spec.name)) throw new Error(`parameter "${spec.name}" is listed twice`);
    names.add(spec.name);
    if (spec.shape.some((d) => !Number.isInteger(d) || d <= 0)) throw new Error(`parameter "${spec.name}" has a bad shape [${spec.shape.join(', ')}]`);
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const tensor = { name: spec.name, shape: [...spec.shape], offset, size };
    offset += size;
    return tensor;
  });
  return { tensors, size: offset };
}

/** Views (no copies) of each tensor in `flat`, by name. */
export function viewsOf(layout: ParamLayout, flat: Float32Array): Map<string, Float32Array> {
  if (flat.length !== layout.size) throw new Error(`flat vector has ${flat.length} elements, the layout needs ${layout.size}`);
  return new Map(layout.tensors.map((t) => [t.name, flat.subarray(t.offset, t.offset + t.size)]));
}
