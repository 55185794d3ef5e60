import { createHash } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { ParamLayout, TensorSpec } from './params.js';
import { layoutOf } from './params.js';

/**
 * Checkpoint file format, version 1 (all integers little-endian):
 *
 *   offset 0   8 bytes   magic "CONCORD1"
 *   offset 8   4 bytes   uint32 header length H
 *   offset 12  H bytes   header: UTF-8 JSON
 *                          { version: 1, layout: [{name, shape}], sections: [{name, length}],
 *                            meta: {...} }           (meta: config, step, round — anything JSON)
 *   then       padding with zeros to a multiple of 64 bytes
 *   then       each section in order: `length` float32 values, little-endian
 *
 * The first section is always "params" (length = layout size); others (e.g. "momentum",
 * "error_feedback") hold optimizer state of the same or any length.
 *
 * The model hash is SHA-256 over "concord.model.v1" 0x00, the canonical JSON of the layout
 * (names and shapes), 0x00, and the parameters as little-endian float32. It depends on nothing
 * but the layout and the exact bits of the parameters, so it is equal on every machine.
 */
const MAGIC = Buffer.from('CONCORD1');
const ALIGN = 64;
const HASH_DOMAIN = Buffer.from('concord.model.v1\0');

if (endianness() !== 'LE') throw new Error('Concord checkpoints assume a little-endian machine');

export interface Checkpoint {
  layout: ParamLayout;
  /** Named float32 sections; "params" first. */
  sections: Map<string, Float32Array>;
  meta: Record<string, unknown>;
}

function canonicalLayout(layout: ParamLayout): string {
  return JSON.stringify(layout.tensors.map((t) => ({ name: t.name, shape: t.shape })));
}

function bytesOf(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** SHA-256 of the layout and the exact parameter bits (32 bytes). */
export function modelHash(layout: ParamLayout, params: Float32Array): Buffer {
  if (params.length !== layout.size) throw new Error(`params have ${params.length} values, the layout needs ${layout.size}`);
  return createHash('sha256').update(HASH_DOMAIN).update(canonicalLayout(layout)).update('\0').update(bytesOf(params)).digest();
}

export function encodeCheckpoint(checkpoint: Checkpoint): Buffer[] {
  const params = checkpoint.sections.get('params');
  if (params === undefined || [...checkpoint.sections.keys()][0] !== 'params') throw new Error('a checkpoint needs "params" as its first section');
  if (params.length !== checkpoint.layout.size) throw new Error(`params have ${params.length} values, the layout needs ${checkpoint.layout.size}`);
  const head = encodeCheckpointHead(checkpoint.layout, [...checkpoint.sections].map(([name, values]) => ({ name, length: values.length })), checkpoint.meta);
  return [...head, ...[...checkpoint.sections.values()].map(bytesOf)];
}

/**
 * What precedes the sections of a checkpoint with these section lengths: magic and header
 * length, the header, the padding (three buffers, in order). For writers that place the sections
 * themselves.
 */
export function encodeCheckpointHead(layout: ParamLayout, sections: ReadonlyArray<{ name: string; length: number }>, meta: Record<string, unknown>): Buffer[] {
  const header = Buffer.from(JSON.stringify({
    version: 1,
    layout: layout.tensors.map((t) => ({ name: t.name, shape: t.shape })),
    sections,
    meta,
  }));
  const prefix = Buffer.alloc(12);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(header.length, 8);
  const used = 12 + header.length;
  const padding = Buffer.alloc((ALIGN - (used % ALIGN)) % ALIGN);
  return [prefix, header, padding];
}

export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 12 || !buffer.subarray(0, 8).equals(MAGIC)) throw new Error('not a Concord checkpoint (bad magic)');
  const headerLength = buffer.readUInt32LE(8);
  if (12 + headerLength > buffer.length) throw new Error(`checkpoint header of ${headerLength} bytes runs past the end of the file`);
  let header: { version?: unknown; layout?: unknown; sections?: unknown; meta?: unknown };
  try {
    header = JSON.parse(buffer.subarray(12, 12 + headerLength).toString('utf8'));
  } catch (error) {
    throw new Error(`checkpoint header is not JSON: ${(error as Error).message}`);
  }
  if (header.version !== 1) throw new Error(`checkpoint version ${String(header.version)} is not supported (expected 1)`);
  const layout = layoutOf(header.layout as TensorSpec[]);
  const sectionList = header.sections as Array<{ name: string; length: number }>;
  if (!Array.isArray(sectionList) || sectionList[0]?.name !== 'params') throw new Error('checkpoint has no "params" section first');
  let offset = 12 + headerLength;
  offset += (ALIGN - (offset % ALIGN)) % ALIGN;
  const sections = new Map<string, Float32Array>();
  for (const { name, length } of sectionList) {
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`section "${name}" has a bad length`);
    const end = offset + length * 4;
    if (end > buffer.length) throw new Error(`section "${name}" runs past the end of the file`);
    // Copy into a fresh, aligned array: the file's bytes need not be 4-byte aligned in memory.
    sections.set(name, new Float32Array(buffer.buffer.slice(buffer.byteOffset + offset, buffer.byteOffset + end)));
    offset = end;
  }
  if (offset !== buffer.length) throw new Error(`checkpoint has ${buffer.length - offset} unexpected trailing bytes`);
  if (sections.get('params')!.length !== layout.size) throw new Error(`params section has ${sections.get('params')!.length} values, the layout needs ${layout.size}`);
  return { layout, sections, meta: (header.meta ?? {}) as Record<string, unknown> };
}

/** Writes atomically: a temporary file, fsync, then rename over the target. */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  const file = await open(temporary, 'w');
  try {
    for (const part of encodeCheckpoint(checkpoint)) await file.write(part);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
}

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  return decodeCheckpoint(await readFile(path));
}
