import type { ParamLayout } from '../params.js';

/** A float32 tensor under a name, as a safetensors file holds it (row-major). */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * The safetensors format (Hugging Face): 8-byte little-endian header length N, N bytes of JSON
 * header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
 * then the tensors' bytes back to back (offsets relative to the end of the header). Written by
 * hand: it is a few lines, and every ML stack reads it.
 */
export function encodeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Buffer[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    if (Object.hasOwn(header, t.name)) throw new Error(`safetensors: the name ${t.name} is used twice`);
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`safetensors: ${t.name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (allowed by the format).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [length, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

/** A flat parameter vector's tensors under their layout names (Concord's own naming). */
export function layoutTensors(layout: ParamLayout, params: Float32Array): NamedTensor[] {
  if (params.length !== layout.size) throw new Error(`params have ${params.length} values, the layout needs ${layout.size}`);
  return layout.tensors.map((t) => ({ name: t.name, shape: [...t.shape], data: params.subarray(t.offset, t.offset + t.size) }));
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Reads a safetensors file of F32 tensors (what encodeSafetensors writes), checking offsets. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 8) throw new Error('safetensors: shorter than its 8-byte header length');
  const headerLength = Number(buffer.readBigUInt64LE(0));
  if (8 + headerLength > buffer.length) throw new Error('safetensors: header runs past the end of the file');
  const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    if (entry.dtype !== 'F32') throw new Error(`safetensors: ${name} has dtype ${entry.dtype}, only F32 is read`);
    const [begin, end] = entry.data_offsets;
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== size * 4 || dataStart + end > buffer.length) throw new Error(`safetensors: ${name} has bad data offsets`);
    const data = new Float32Array(size);
    new Uint8Array(data.buffer).set(buffer.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: entry.shape, data });
  }
  return { metadata, tensors };
}
