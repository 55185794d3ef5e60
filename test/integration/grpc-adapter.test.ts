import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { TrainerService } from '../../proto/gen/concord/v1/trainer_pb.js';
import { addService, createClient, RpcError, type ServiceClient } from '../../proto/grpc/index.js';
import { CALL_MS, EXPIRING_CALL_MS } from '../support/deadlines.js';
import { waitFor } from '../support/wait.js';

// The adapter is exercised with the trainer service: it has unary and server-streaming methods.
describe('gRPC adapter over real loopback gRPC', () => {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  let client: ServiceClient<(typeof TrainerService)['method']> & { close(): void };
  const errors: Array<{ reason: string | undefined; method: string }> = [];
  const internal: unknown[] = [];
  const aborted: string[] = [];
  const MiB = 1024 * 1024;
  let port = 0;

  beforeAll(async () => {
    addService(server, TrainerService, {
      async reportProgress(request, context) {
        if (request.taskId === 'slow') {
          // Answers only once the call is gone (its deadline passed), however long that takes;
          // CALL_MS only bounds a cancellation that never comes.
          await new Promise<void>((resolve) => {
            if (context.signal.aborted) return resolve();
            const bound = setTimeout(resolve, CALL_MS);
            context.signal.addEventListener('abort', () => { clearTimeout(bound); resolve(); }, { once: true });
          });
          if (context.signal.aborted) aborted.push('reportProgress');
          return {};
        }
        if (request.taskId === 'refuse') throw new RpcError(grpc.status.FAILED_PRECONDITION, 'task is over', 'TaskOver');
        if (request.taskId === 'bug') throw new TypeError('secret internals');
        return { cancel: request.step > 10n };
      },
      async *join(request) {
        let i = 0;
        try {
          for (; i < 1000; i++) {
            yield { taskId: `${request.trainerId}-${i}`, task: { case: 'train', value: { round: BigInt(i), baseHash: Buffer.alloc(MiB, i % 256) } } };
          }
        } finally {
          // Runs when the stream ends, including when the adapter stops the generator early.
          if (i < 1000) aborted.push(`join ${request.trainerId} stopped at ${i}`);
        }
      },
      async uploadDelta(request) {
        return { receivedBytes: request.offset + BigInt(request.data.length) };
      },
      async completeTask() {
        return {};
      },
      async *fetchBlob() {
        throw new RpcError(grpc.status.NOT_FOUND, 'no such blob');
      },
    }, {
      maxRequestBytes: 64 * 1024,
      onError: (error, method) => errors.push({ reason: error.reason, method }),
      onInternalError: (error) => internal.push(error),
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = createClient(TrainerService, `127.0.0.1:${port}`);
  });
  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  it('calls a unary method with typed request and response', async () => {
    expect((await client.reportProgress({ taskId: 't', step: 11n })).cancel).toBe(true);
    expect((await client.reportProgress({ taskId: 't', step: 3n })).cancel).toBe(false);
  });

  it('streams server responses in order, 1 MiB each, with back-pressure', async () => {
    let count = 0;
    for await (const response of client.join({ trainerId: 'w' }, { timeoutMs: CALL_MS })) {
      expect(response.taskId).toBe(`w-${count}`);
      expect(response.task.case).toBe('train');
      if (response.task.case === 'train') expect(response.task.value.baseHash[MiB - 1]).toBe(count % 256);
      if (++count === 40) break;
    }
    expect(count).toBe(40);
  });

  it('cancels the server side when the client stops reading a stream', async () => {
    for await (const response of client.join({ trainerId: 'early' })) {
      if (response.taskId === 'early-2') break;
    }
    await waitFor(() => aborted.some((a) => a.startsWith('join early stopped')), CALL_MS, 'the server\'s stream generator to be stopped');
  });

  it('enforces deadlines and tells the handler the call is gone', async () => {
    // The handler never answers before the call is gone, so the deadline passes however slow the
    // machine; it only has to be long enough for the call to reach the handler.
    const error = await client.reportProgress({ taskId: 'slow' }, { timeoutMs: EXPIRING_CALL_MS }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => aborted.includes('reportProgress'), CALL_MS, 'the handler to see its call aborted');
  });

  it('carries a handler status code and reason to the client', async () => {
    const error = (await client.reportProgress({ taskId: 'refuse' }).catch((e: unknown) => e)) as RpcError;
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.reason).toBe('TaskOver');
    expect(error.detail).toBe('task is over');
    expect(errors).toContainEqual({ reason: 'TaskOver', method: '/concord.v1.TrainerService/ReportProgress' });
  });

  it('reports a streaming handler error to the client', async () => {
    const consume = async () => {
      for await (const _ of client.fetchBlob({ sha256: Buffer.alloc(32) })) { /* nothing arrives */ }
    };
    const error = (await consume().catch((e: unknown) => e)) as RpcError;
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.message).toBe('no such blob');
  });

  it('hides internal errors from the client and reports them locally', async () => {
    const error = (await client.reportProgress({ taskId: 'bug' }).catch((e: unknown) => e)) as RpcError;
    expect(error.code).toBe(grpc.status.INTERNAL);
    expect(error.message).toBe('internal error');
    expect(String(internal.at(-1))).toMatch(/secret internals/);
  });

  it('refuses requests over the size limit as TooLarge, both in the adapter and in grpc-js', async () => {
    const inAdapter = (await client.uploadDelta({ taskId: 't', data: Buffer.alloc(100 * 1024) }).catch((e: unknown) => e)) as RpcError;
    expect(inAdapter.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(inAdapter.reason).toBe('TooLarge');
    const inTransport = (await client.uploadDelta({ taskId: 't', data: Buffer.alloc(2 * MiB) }).catch((e: unknown) => e)) as RpcError;
    expect(inTransport.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(inTransport.reason).toBe('TooLarge');
    expect((await client.uploadDelta({ taskId: 't', offset: 8n, data: Buffer.alloc(1000) })).receivedBytes).toBe(1008n);
  });

  it('refuses a request that does not decode as Malformed', async () => {
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    // A field tag followed by a truncated varint cannot decode as any message.
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest('/concord.v1.TrainerService/ReportProgress', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x10, 0xff]), (e) => resolve(e!)));
    raw.close();
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.metadata.get('concord-reason')).toEqual(['Malformed']);
  });
});
