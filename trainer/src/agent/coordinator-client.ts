// A trainer's side of the coordinator ↔ trainer service (proto/concord/v1/trainer.proto): join
// and take tasks, fetch blobs (base parameters, contribution payloads), upload the
// pseudo-gradient, report progress and results. Speaks only the proto contract.
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  TrainerService,
  type CompleteTaskRequestSchema, type JoinResponse,
} from '../../../proto/gen/concord/v1/trainer_pb.js';
import { createClient, RpcError, type ClientOptions, type ServiceClient } from '../../../proto/grpc/index.js';

const MiB = 1024 * 1024;
/** Largest chunk of data the service takes (trainer.proto). */
export const MAX_CHUNK_BYTES = 4 * MiB;

export interface TrainerIdentity {
  /** The pod name; 1 to 253 characters. */
  trainerId: string;
  /** The worker group; 1 to 63 characters. */
  group: string;
  replica: number;
  device: 'cuda' | 'cpu';
}

/** The result of a task, as CompleteTask carries it. */
export type TaskResultInit = MessageInitShape<typeof CompleteTaskRequestSchema>['result'];

export interface ProgressReport {
  step: bigint | number;
  loss: number;
  tokens: bigint | number;
  tokensPerSecond: number;
}

export interface JoinOptions {
  /** Aborting leaves: the Join stream is cancelled and `join` resolves. */
  signal?: AbortSignal;
  /**
   * When `onTask` throws, report the task as failed (CompleteTask with `error`) instead of
   * ending the Join stream (default true).
   */
  reportErrors?: boolean;
}

/** A typed client of TrainerService for one coordinator address. */
export class CoordinatorClient {
  private readonly client: ServiceClient<(typeof TrainerService)['method']> & { close(): void };

  constructor(readonly address: string, options: ClientOptions = {}) {
    if (endianness() !== 'LE') throw new Error('deltas travel as little-endian float32; this host is big-endian');
    this.client = createClient(TrainerService, address, options);
  }

  /**
   * Joins and hands each task to `onTask`, one at a time, in the order they arrive. Resolves when
   * the coordinator ends the stream or `signal` aborts; rejects with an RpcError when the stream
   * fails (coordinator gone, refusal).
   */
  async join(info: TrainerIdentity, onTask: (task: JoinResponse) => Promise<void> | void, options: JoinOptions = {}): Promise<void> {
    const { signal } = options;
    try {
      for await (const task of this.client.join(info, signal === undefined ? {} : { signal })) {
        try {
          await onTask(task);
        } catch (error) {
          if (options.reportErrors === false) throw error;
          const message = (error instanceof Error ? error.message : String(error)).slice(0, 1024);
          await this.complete(task.taskId, { case: 'error', value: message || 'the task failed' }).catch(() => undefined);
        }
      }
    } catch (error) {
      if (signal?.aborted && error instanceof RpcError && error.code === grpc.status.CANCELLED) return;
      throw error;
    }
  }

  /**
   * Fetches a blob by SHA-256 and checks it: contiguous chunks, a consistent total of at most
   * `maxBytes`, and the hash of what arrived.
   */
  async fetchBlob(sha256: Uint8Array, maxBytes: number, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Uint8Array> {
    if (sha256.length !== 32) throw new Error(`a blob hash is 32 bytes, got ${sha256.length}`);
    const hex = Buffer.from(sha256).toString('hex');
    let bytes: Uint8Array | undefined;
    let total = -1;
    let received = 0;
    for await (const chunk of this.client.fetchBlob({ sha256 }, withDefined(options))) {
      const offset = Number(chunk.offset);
      const chunkTotal = Number(chunk.totalBytes);
      if (total === -1) {
        if (chunkTotal > maxBytes) throw new Error(`blob ${hex} is ${chunkTotal} bytes, more than the ${maxBytes} accepted`);
        total = chunkTotal;
        bytes = new Uint8Array(total);
      } else if (chunkTotal !== total) {
        throw new Error(`blob ${hex}: total_bytes changed from ${total} to ${chunkTotal} mid-stream`);
      }
      if (offset !== received) throw new Error(`blob ${hex}: chunk at offset ${offset}, expected ${received}`);
      if (chunk.data.length === 0 || chunk.data.length > MAX_CHUNK_BYTES) throw new Error(`blob ${hex}: chunk of ${chunk.data.length} bytes (1 to ${MAX_CHUNK_BYTES} allowed)`);
      if (received + chunk.data.length > total) throw new Error(`blob ${hex}: chunk at ${offset} runs past the ${total}-byte total`);
      bytes!.set(chunk.data, received);
      received += chunk.data.length;
    }
    bytes ??= new Uint8Array(0);
    if (received !== Math.max(total, 0)) throw new Error(`blob ${hex}: stream ended after ${received} of ${total} bytes`);
    const actual = createHash('sha256').update(bytes).digest();
    if (!actual.equals(sha256)) throw new Error(`blob ${hex}: content hashes to ${actual.toString('hex')}`);
    return bytes;
  }

  /** Fetches a blob of float32 values (e.g. base parameters) of exactly `count` values. */
  async fetchParams(sha256: Uint8Array, count: number, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Float32Array> {
    const bytes = await this.fetchBlob(sha256, 4 * count, options);
    if (bytes.length !== 4 * count) throw new Error(`blob is ${bytes.length} bytes, expected ${4 * count} (${count} float32)`);
    // fetchBlob allocates a fresh, aligned buffer of exactly this size.
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }

  /** Uploads a delta for a train task, in order, `chunkBytes` (1 byte to 4 MiB) per call. */
  async uploadDelta(taskId: string, delta: Float32Array, chunkBytes = MAX_CHUNK_BYTES, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!(Number.isInteger(chunkBytes) && chunkBytes >= 1 && chunkBytes <= MAX_CHUNK_BYTES)) throw new Error(`chunkBytes must be 1 to ${MAX_CHUNK_BYTES}`);
    const bytes = new Uint8Array(delta.buffer, delta.byteOffset, delta.byteLength);
    const totalBytes = BigInt(bytes.length);
    for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
      const data = bytes.subarray(offset, Math.min(bytes.length, offset + chunkBytes));
      const response = await this.client.uploadDelta({ taskId, offset: BigInt(offset), totalBytes, data }, withDefined(options));
      const expected = BigInt(offset + data.length);
      if (response.receivedBytes !== expected) {
        throw new Error(`task ${taskId}: the coordinator has ${response.receivedBytes} delta bytes, expected ${expected}`);
      }
    }
  }

  /** Reports progress; returns true when the coordinator wants the task to stop. */
  async reportProgress(taskId: string, progress: ProgressReport): Promise<boolean> {
    const response = await this.client.reportProgress({
      taskId, step: BigInt(progress.step), loss: progress.loss, tokens: BigInt(progress.tokens), tokensPerSecond: progress.tokensPerSecond,
    });
    return response.cancel;
  }

  /** Reports the result of a task (`train` after its delta is uploaded, or `error`). */
  async complete(taskId: string, result: TaskResultInit): Promise<void> {
    await this.client.completeTask({ taskId, result });
  }

  close(): void {
    this.client.close();
  }
}

function withDefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
