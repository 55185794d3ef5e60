import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { TrainerService, type JoinResponse } from '../../proto/gen/concord/v1/trainer_pb.js';
import { createClient, RpcError, type ServiceClient } from '../../proto/grpc/index.js';
import { Blob, MemoryBlobStore, sha256, type BlobStore } from '../../operator/src/federation/blob-store.js';
import { TaskFailedError, TrainerGateway } from '../../operator/src/coordinator/trainer-gateway.js';
import { CoordinatorClient } from '../../trainer/src/agent/coordinator-client.js';
import { CALL_MS, TRAINERS_JOIN_MS, within } from '../support/deadlines.js';
import { refusal } from '../support/refusal.js';
import { waitFor } from '../support/wait.js';

// The coordinator ↔ trainer service over real loopback gRPC. The "trainers" compute a
// deterministic fake delta (base + 0.01·replica) instead of training: this is about the service.
const PARAMS = 3_000_000; // 12 MB of float32: three 4 MiB chunks each way
const MiB = 1024 * 1024;

function baseParams(): Float32Array {
  const params = new Float32Array(PARAMS);
  for (let i = 0; i < PARAMS; i++) params[i] = Math.sin(i * 0.001) * 0.02 + (i % 7) * 1e-3;
  return params;
}

function fakeDelta(base: Float32Array, replica: number): Float32Array {
  const delta = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) delta[i] = base[i]! + 0.01 * replica;
  return delta;
}

function bytesOf(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

/** A store whose blob under `liar`'s hash holds other bytes: the client must notice. */
class LyingStore implements BlobStore {
  constructor(private readonly inner: MemoryBlobStore, private readonly liar: Buffer, private readonly blob: Blob) {}
  get(hash: Uint8Array): Blob | undefined {
    return Buffer.from(hash).equals(this.liar) ? this.blob : this.inner.get(hash);
  }
}

describe('trainer gateway over real loopback gRPC', () => {
  const blobs = new MemoryBlobStore();
  const base = baseParams();
  const baseHash = blobs.put(bytesOf(base).subarray());
  const lie = sha256(Buffer.from('what the coordinator claims'));
  const store = new LyingStore(blobs, lie, new Blob(Buffer.from('something else entirely')));
  const gateway = new TrainerGateway({ paramCount: PARAMS, blobs: store });
  let address = '';
  const trainers: CoordinatorClient[] = [];
  const joins: Array<Promise<void>> = [];
  const leave = new AbortController();
  /** Tasks the held trainer got and has not answered. */
  const held: JoinResponse[] = [];
  let raw: ServiceClient<(typeof TrainerService)['method']> & { close(): void };

  beforeAll(async () => {
    address = `127.0.0.1:${await gateway.listen('127.0.0.1', 0)}`;
    raw = createClient(TrainerService, address);
    for (const replica of [0, 1]) {
      const client = new CoordinatorClient(address);
      trainers.push(client);
      joins.push(client.join({ trainerId: `trainer-${replica}`, group: 'cpu', replica, device: 'cpu' }, async (task) => {
        if (task.task.case !== 'train') throw new Error(`trainer-${replica} only trains`);
        const params = await client.fetchParams(task.task.value.baseHash, PARAMS);
        expect(await client.reportProgress(task.taskId, { step: 1, loss: 5.5 - replica, tokens: 1024, tokensPerSecond: 100 })).toBe(false);
        await client.uploadDelta(task.taskId, fakeDelta(params, replica));
        await client.complete(task.taskId, { case: 'train', value: { tokens: 1024n * BigInt(replica + 1), steps: 4n, finalLoss: 5 - replica } });
      }));
    }
    // A trainer that takes tasks and does not answer them, until it leaves.
    const holder = new CoordinatorClient(address);
    trainers.push(holder);
    joins.push(holder.join({ trainerId: 'trainer-held', group: 'cpu', replica: 2, device: 'cpu' }, (task) => { held.push(task); }, { signal: leave.signal }));
    await gateway.waitForTrainers(3, TRAINERS_JOIN_MS);
  }, within(TRAINERS_JOIN_MS));

  afterAll(async () => {
    leave.abort();
    await gateway.close(200);
    await Promise.allSettled(joins);
    for (const client of trainers) client.close();
    raw.close();
  });

  it('lists the joined trainers', () => {
    const listed = gateway.trainers().map(({ trainerId, group, replica, device }) => ({ trainerId, group, replica, device }));
    expect(listed.sort((a, b) => a.trainerId.localeCompare(b.trainerId))).toEqual([
      { trainerId: 'trainer-0', group: 'cpu', replica: 0, device: 'cpu' },
      { trainerId: 'trainer-1', group: 'cpu', replica: 1, device: 'cpu' },
      { trainerId: 'trainer-held', group: 'cpu', replica: 2, device: 'cpu' },
    ]);
  });

  it('runs a train task on each trainer and gets both deltas back bitwise intact', async () => {
    const task = { case: 'train' as const, value: { round: 3n, baseHash, deadlineUnixMs: BigInt(Date.now() + CALL_MS), peerId: 'cluster-a' } };
    const [zero, one] = await Promise.all([gateway.run('trainer-0', task), gateway.run('trainer-1', task)]);
    for (const [replica, outcome] of [[0, zero], [1, one]] as const) {
      expect(outcome.result.case).toBe('train');
      if (outcome.result.case === 'train') expect(outcome.result.value.tokens).toBe(1024n * BigInt(replica + 1));
      expect(outcome.delta).toHaveLength(PARAMS);
      expect(bytesOf(outcome.delta!).equals(bytesOf(fakeDelta(base, replica)))).toBe(true);
    }
    expect(gateway.progress('trainer-1')).toMatchObject({ step: 1n, loss: 4.5, tokens: 1024n });
    // Finished tasks hold nothing.
    expect(gateway.trainers().every((trainer) => trainer.tasks.length === 0)).toBe(true);
  }, within(CALL_MS));

  it('serves blobs by hash, checked by the client, resumable at an offset', async () => {
    const client = trainers[0]!;
    expect(Buffer.from(await client.fetchBlob(baseHash, 4 * PARAMS)).equals(bytesOf(base))).toBe(true);
    await expect(client.fetchBlob(baseHash, 4 * PARAMS - 1)).rejects.toThrow(/more than the .* accepted/);
    await expect(client.fetchBlob(lie, MiB)).rejects.toThrow(/content hashes to/);
    expect((await refusal(client.fetchBlob(sha256(Buffer.from('absent')), MiB))).code).toBe(grpc.status.NOT_FOUND);
    expect((await refusal(drain(raw.fetchBlob({ sha256: Buffer.alloc(5) })))).code).toBe(grpc.status.INVALID_ARGUMENT);
    // A resumed transfer starts mid-chunk and continues on chunk boundaries.
    const offsets: number[] = [];
    const parts: Uint8Array[] = [];
    for await (const chunk of raw.fetchBlob({ sha256: baseHash, offset: BigInt(5 * MiB + 3) })) {
      offsets.push(Number(chunk.offset));
      parts.push(chunk.data);
    }
    expect(offsets).toEqual([5 * MiB + 3, 8 * MiB]);
    expect(Buffer.concat(parts).equals(bytesOf(base).subarray(5 * MiB + 3))).toBe(true);
  });

  it('refuses bad uploads and completions with a reason', async () => {
    const pending = gateway.run('trainer-held', { case: 'train', value: { round: 4n, baseHash, peerId: 'cluster-a' } });
    pending.catch(() => undefined);
    await waitFor(() => held.length > 0, CALL_MS, 'the held trainer to get the train task', 5);
    const { taskId } = held[0]!;
    const total = BigInt(4 * PARAMS);
    const chunk = Buffer.alloc(MiB, 1);

    const unknown = await refusal(raw.uploadDelta({ taskId: 'no-such-task', offset: 0n, totalBytes: total, data: chunk }));
    expect([unknown.code, unknown.reason]).toEqual([grpc.status.NOT_FOUND, 'UnknownTask']);
    expect(unknown.detail).toMatch(/no running task "no-such-task"/);

    const wrongTotal = await refusal(raw.uploadDelta({ taskId, offset: 0n, totalBytes: total - 4n, data: chunk }));
    expect([wrongTotal.code, wrongTotal.reason]).toEqual([grpc.status.INVALID_ARGUMENT, 'WrongSize']);
    expect(wrongTotal.detail).toMatch(/total_bytes is 11999996, expected 12000000/);

    expect((await raw.uploadDelta({ taskId, offset: 0n, totalBytes: total, data: chunk })).receivedBytes).toBe(BigInt(MiB));
    const skipped = await refusal(raw.uploadDelta({ taskId, offset: 2n * BigInt(MiB), totalBytes: total, data: chunk }));
    expect([skipped.code, skipped.reason]).toEqual([grpc.status.INVALID_ARGUMENT, 'OutOfOrder']);
    expect(skipped.detail).toMatch(/offset 2097152, expected 1048576/);

    const big = await refusal(raw.uploadDelta({ taskId, offset: BigInt(MiB), totalBytes: total, data: Buffer.alloc(4 * MiB + 1) }));
    expect([big.code, big.reason]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'TooLarge']);

    const early = await refusal(raw.completeTask({ taskId, result: { case: 'train', value: { tokens: 1n } } }));
    expect([early.code, early.reason]).toEqual([grpc.status.FAILED_PRECONDITION, 'IncompleteDelta']);
    const wrongKind = await refusal(raw.completeTask({ taskId, result: { case: 'apply', value: { modelHash: Buffer.alloc(32) } } }));
    expect([wrongKind.code, wrongKind.reason]).toEqual([grpc.status.FAILED_PRECONDITION, 'WrongTask']);
    const ghost = await refusal(raw.completeTask({ taskId: 'no-such-task', result: { case: 'error', value: 'x' } }));
    expect([ghost.code, ghost.reason]).toEqual([grpc.status.NOT_FOUND, 'UnknownTask']);
    const progress = await refusal(raw.reportProgress({ taskId: 'no-such-task' }));
    expect(progress.code).toBe(grpc.status.NOT_FOUND);

    // One delta buffer for this task, still pending.
    expect(gateway.trainers().find((trainer) => trainer.trainerId === 'trainer-held')!.tasks).toEqual([taskId]);
  }, within(CALL_MS));

  it('rejects a run whose trainer reports an error', async () => {
    const before = held.length;
    const pending = gateway.run('trainer-held', { case: 'evaluate', value: { round: 4n, baseHash, payloadHash: baseHash, contributorPeerId: 'b' } });
    pending.catch(() => undefined);
    await waitFor(() => held.length > before, CALL_MS, 'the held trainer to get the evaluate task', 5);
    await raw.completeTask({ taskId: held[before]!.taskId, result: { case: 'error', value: 'out of memory' } });
    await expect(pending).rejects.toThrow(/trainer trainer-held failed evaluate task .*: out of memory/);
  }, within(CALL_MS));

  it('cancels a run on abort and tells the trainer through ReportProgress', async () => {
    const before = held.length;
    const abort = new AbortController();
    const pending = gateway.run('trainer-held', { case: 'train', value: { round: 5n, baseHash } }, { signal: abort.signal });
    pending.catch(() => undefined);
    await waitFor(() => held.length > before, CALL_MS, 'the held trainer to get the train task', 5);
    const { taskId } = held[before]!;
    expect((await raw.reportProgress({ taskId, step: 1n })).cancel).toBe(false);
    abort.abort();
    await expect(pending).rejects.toThrow(/was cancelled/);
    expect((await raw.reportProgress({ taskId, step: 2n })).cancel).toBe(true);
    const upload = await refusal(raw.uploadDelta({ taskId, offset: 0n, totalBytes: BigInt(4 * PARAMS), data: Buffer.alloc(4) }));
    expect([upload.code, upload.reason]).toEqual([grpc.status.FAILED_PRECONDITION, 'TaskCancelled']);
    await raw.completeTask({ taskId, result: { case: 'error', value: 'cancelled' } });
    expect((await refusal(raw.reportProgress({ taskId }))).code).toBe(grpc.status.NOT_FOUND);
  }, within(CALL_MS));

  it('rejects pending runs when their trainer leaves, and runs on unknown trainers', async () => {
    const pending = gateway.run('trainer-held', { case: 'apply', value: { round: 4n, baseHash } });
    pending.catch(() => undefined);
    leave.abort();
    const error = await pending.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).reason).toBe('left');
    expect((error as Error).message).toMatch(/trainer trainer-held left before finishing apply task/);
    await joins[2];
    // The train task from the refusal test went with it: its upload is refused now.
    const after = await refusal(raw.uploadDelta({ taskId: held[0]!.taskId, offset: 0n, totalBytes: BigInt(4 * PARAMS), data: Buffer.alloc(4) }));
    expect(after.code).toBe(grpc.status.NOT_FOUND);
    expect(gateway.trainers().map((trainer) => trainer.trainerId).sort()).toEqual(['trainer-0', 'trainer-1']);
    await expect(gateway.run('trainer-held', { case: 'apply', value: { round: 4n, baseHash } })).rejects.toThrow(/no trainer trainer-held has joined/);
  });
});
