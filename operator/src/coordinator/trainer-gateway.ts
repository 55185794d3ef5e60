// The coordinator's side of the coordinator ↔ trainer service (proto/concord/v1/trainer.proto).
// Trainers dial in and Join; the coordinator hands each one tasks with `run` and gets back the
// result (and, for a train task, the pseudo-gradient uploaded in chunks). Inside one cluster both
// ends trust each other, but input is still checked: a buggy trainer must not make the
// coordinator allocate without bound or mix up two tasks' deltas.
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  TrainerService,
  type CompleteTaskRequest, type JoinResponseSchema, type ReportProgressRequest,
} from '../../../proto/gen/concord/v1/trainer_pb.js';
import { addService, encodeChunkMessage, listen, RpcError, shutdown, type CallContext, type EncodedMessage, type ServiceImplementation } from '../../../proto/grpc/index.js';
import type { BlobStore } from '../federation/blob-store.js';
import { Limits } from '../federation/limits.js';
import type { BufferPool } from './buffer-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Limits of trainer.proto; the sizes shared with the federation protocol come from its Limits. */
export const TrainerLimits = {
  /** A unary request (everything but UploadDelta chunks). */
  unaryMessageBytes: Limits.unaryMessageBytes,
  /** Data of one streamed or uploaded chunk. */
  chunkBytes: Limits.chunkBytes,
  /** What grpc-js accepts; above every limit so that Concord's checks see oversized messages. */
  transportMessageBytes: Limits.transportMessageBytes,
  trainerIdChars: 253,
  groupChars: 63,
  taskIdChars: 64,
  errorChars: 1024,
  hashBytes: Limits.hashBytes,
  aggregationInputs: 1024,
} as const;

/** Why the gateway refused a call; the `concord-reason` trailer of the RpcError. */
export type GatewayRefusal = 'Malformed' | 'TooLarge' | 'UnknownTask' | 'WrongTask' | 'OutOfOrder' | 'WrongSize' | 'IncompleteDelta' | 'TaskCancelled';

function refuse(reason: GatewayRefusal, message: string): RpcError {
  const code = reason === 'UnknownTask' ? grpc.status.NOT_FOUND
    : reason === 'TooLarge' ? grpc.status.RESOURCE_EXHAUSTED
      : reason === 'IncompleteDelta' || reason === 'TaskCancelled' || reason === 'WrongTask' ? grpc.status.FAILED_PRECONDITION
        : grpc.status.INVALID_ARGUMENT;
  return new RpcError(code, message, reason);
}

/** A task as the coordinator writes it (the `task` oneof of JoinResponse). */
export type TaskSpec = NonNullable<MessageInitShape<typeof JoinResponseSchema>['task']>;
export type TaskKind = 'train' | 'evaluate' | 'apply';
export type TaskResult = CompleteTaskRequest['result'];

export interface TaskOutcome {
  /** The trainer's result: `train`, `evaluate` or `apply`, matching the task (never `error`). */
  result: TaskResult;
  /** The uploaded pseudo-gradient θ_base − θ_local, for train tasks; `paramCount` values. */
  delta?: Float32Array;
}

/** Why a `run` did not produce a result. */
export class TaskFailedError extends Error {
  constructor(
    readonly trainerId: string,
    readonly taskId: string,
    readonly reason: 'left' | 'error' | 'cancelled' | 'closed' | 'unknown-trainer',
    message: string,
  ) {
    super(message);
    this.name = 'TaskFailedError';
  }
}

export interface TrainerInfo {
  trainerId: string;
  group: string;
  replica: number;
  device: string;
  peerAddress: string;
  joinedAtMs: number;
  /** Ids of its tasks handed out and not yet completed. */
  tasks: string[];
}

export interface TrainerProgress {
  taskId: string;
  step: bigint;
  loss: number;
  tokens: bigint;
  tokensPerSecond: number;
  /** When it arrived, Unix milliseconds. */
  atMs: number;
}

export interface TrainerGatewayOptions {
  /** Parameter count of the model: every uploaded delta is 4 × this many bytes. */
  paramCount: number;
  /** Blobs trainers fetch with FetchBlob: base parameters, contribution payloads. */
  blobs: BlobStore;
  /** Data per FetchBlob chunk, 1 byte to 4 MiB (default 4 MiB). */
  chunkBytes?: number;
  /** Called with every refusal sent to a trainer (for logs and metrics). */
  onRefused?: (error: RpcError, method: string) => void;
  /** Called when a trainer joins or leaves. */
  onTrainer?: (event: 'joined' | 'left', trainer: TrainerInfo, detail?: string) => void;
  /** Where upload buffers come from (and go back to when a task fails); fresh ones by default. */
  deltaBuffers?: BufferPool;
}

interface Task {
  id: string;
  kind: TaskKind;
  trainer: Session;
  resolve: (outcome: TaskOutcome) => void;
  reject: (error: TaskFailedError) => void;
  cancelled: boolean;
  /** The delta being uploaded (train tasks only, allocated on the first chunk). */
  upload: { bytes: Uint8Array; received: number } | undefined;
}

interface Session {
  info: Omit<TrainerInfo, 'tasks'>;
  queue: Array<MessageInitShape<typeof JoinResponseSchema>>;
  tasks: Set<Task>;
  closed: string | undefined;
  wake: (() => void) | undefined;
  progress: TrainerProgress | undefined;
}

/**
 * Serves TrainerService for one coordinator: tracks the trainers that joined and runs tasks on
 * them. Memory: one delta buffer (4 × paramCount bytes) per train task being uploaded, freed when
 * the task completes, fails or is cancelled.
 */
export class TrainerGateway {
  private readonly server: grpc.Server;
  private readonly sessions = new Map<string, Session>();
  private readonly tasks = new Map<string, Task>();
  private readonly chunkBytes: number;
  private readonly taskPrefix = randomBytes(6).toString('hex');
  private nextTask = 0;
  private closing = false;
  private readonly joinWaiters = new Set<() => void>();

  constructor(private readonly options: TrainerGatewayOptions) {
    if (endianness() !== 'LE') throw new Error('deltas travel as little-endian float32; this host is big-endian');
    if (!Number.isSafeInteger(options.paramCount) || options.paramCount < 1) throw new Error('paramCount must be a positive integer');
    this.chunkBytes = options.chunkBytes ?? TrainerLimits.chunkBytes;
    if (!(Number.isInteger(this.chunkBytes) && this.chunkBytes >= 1 && this.chunkBytes <= TrainerLimits.chunkBytes)) {
      throw new Error(`chunkBytes must be 1 to ${TrainerLimits.chunkBytes}`);
    }
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': TrainerLimits.transportMessageBytes,
      'grpc.max_send_message_length': TrainerLimits.transportMessageBytes,
      // Uploads are client-to-server bulk transfers: the 64 KiB default window throttles them;
      // 4 MiB keeps them fast without buffering a large share of a model-sized delta in flight.
      'grpc-node.flow_control_window': 4 * MiB,
    });
    addService(this.server, TrainerService, this.implementation(), {
      // An UploadDelta request is a 4 MiB chunk plus a small header; its own checks name the limit.
      maxRequestBytes: TrainerLimits.chunkBytes + 64 * KiB,
      onError: (error, method) => options.onRefused?.(error, method),
      onInternalError: (error, method) => console.error(`internal error in ${method}:`, error),
    });
  }

  /** Starts listening; returns the bound port (pass 0 for any free port). */
  listen(host: string, port: number): Promise<number> {
    return listen(this.server, host, port);
  }

  /**
   * Ends every Join stream, fails every pending task (`closed`), then stops the server, letting
   * running calls finish for up to `graceMs`.
   */
  async close(graceMs = 2000): Promise<void> {
    this.closing = true;
    for (const session of this.sessions.values()) this.endSession(session, 'the coordinator is shutting down', 'closed');
    for (const wake of this.joinWaiters) wake();
    await shutdown(this.server, graceMs);
  }

  /** The trainers joined now. */
  trainers(): TrainerInfo[] {
    return [...this.sessions.values()].map((session) => ({ ...session.info, tasks: [...session.tasks].map((task) => task.id) }));
  }

  /** The last ReportProgress of a trainer (for any of its tasks), or undefined. */
  progress(trainerId: string): TrainerProgress | undefined {
    return this.sessions.get(trainerId)?.progress;
  }

  /** Resolves once at least `count` trainers have joined; rejects after `timeoutMs`. */
  async waitForTrainers(count: number, timeoutMs = 30_000): Promise<TrainerInfo[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size < count) {
      if (this.closing) throw new Error('the trainer gateway is closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.sessions.size} of ${count} trainers joined within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => { clearTimeout(timer); this.joinWaiters.delete(wake); resolve(); };
        const timer = setTimeout(wake, left);
        this.joinWaiters.add(wake);
      });
    }
    return this.trainers();
  }

  /**
   * Hands `task` to a joined trainer and waits for its CompleteTask. A train task resolves with
   * the uploaded delta. Rejects with TaskFailedError when the trainer reports an error, leaves
   * (its Join stream ends), the gateway closes, or `signal` aborts (the trainer then gets
   * `cancel: true` on its next ReportProgress).
   */
  run(trainerId: string, task: TaskSpec, options: { signal?: AbortSignal } = {}): Promise<TaskOutcome> {
    const kind = task.case;
    if (kind === undefined) return Promise.reject(new Error('the task has no kind (train, evaluate or apply)'));
    const id = `${this.taskPrefix}-${this.nextTask++}`;
    const session = this.sessions.get(trainerId);
    if (session === undefined || session.closed !== undefined) {
      return Promise.reject(new TaskFailedError(trainerId, id, 'unknown-trainer', `no trainer ${trainerId} has joined`));
    }
    if (options.signal?.aborted) return Promise.reject(new TaskFailedError(trainerId, id, 'cancelled', `task ${id} was cancelled before it started`));
    return new Promise<TaskOutcome>((resolve, reject) => {
      const onAbort = () => this.cancel(id);
      const settle = () => options.signal?.removeEventListener('abort', onAbort);
      const entry: Task = {
        id, kind, trainer: session, cancelled: false, upload: undefined,
        resolve: (outcome) => { settle(); resolve(outcome); },
        reject: (error) => { settle(); reject(error); },
      };
      this.tasks.set(id, entry);
      session.tasks.add(entry);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      session.queue.push({ taskId: id, task });
      this.wakeSession(session);
    });
  }

  /** Fails a running task as cancelled; the trainer learns it from ReportProgress. */
  cancel(taskId: string): void {
    const task = this.tasks.get(taskId);
    if (task === undefined || task.cancelled) return;
    task.cancelled = true;
    this.dropUpload(task);
    task.reject(new TaskFailedError(task.trainer.info.trainerId, task.id, 'cancelled', `task ${task.id} was cancelled`));
  }

  private implementation(): ServiceImplementation<(typeof TrainerService)['method']> {
    return {
      join: (request, context) => this.join(request.trainerId, request.group, request.replica, request.device, context),
      reportProgress: async (request) => {
        const task = this.task(request.taskId);
        task.trainer.progress = progressOf(request);
        return { cancel: task.cancelled };
      },
      uploadDelta: async (request) => {
        const task = this.task(request.taskId);
        if (task.kind !== 'train') throw refuse('WrongTask', `task ${task.id} is a ${task.kind} task and takes no delta`);
        if (task.cancelled) throw refuse('TaskCancelled', `task ${task.id} was cancelled`);
        const expected = 4 * this.options.paramCount;
        if (request.totalBytes !== BigInt(expected)) {
          throw refuse('WrongSize', `total_bytes is ${request.totalBytes}, expected ${expected} (4 × ${this.options.paramCount} parameters)`);
        }
        const { data } = request;
        if (data.length === 0) throw refuse('Malformed', 'a chunk carries 1 byte to 4 MiB of data, got none');
        if (data.length > TrainerLimits.chunkBytes) throw refuse('TooLarge', `a chunk of ${data.length} bytes exceeds the limit of ${TrainerLimits.chunkBytes}`);
        // A chunk must continue the upload; offset 0 restarts it (a trainer retrying from scratch).
        const received = request.offset === 0n ? 0 : task.upload?.received ?? 0;
        if (request.offset !== BigInt(received)) {
          throw refuse('OutOfOrder', `chunk at offset ${request.offset}, expected ${received} (chunks arrive in order)`);
        }
        if (received + data.length > expected) {
          throw refuse('WrongSize', `chunk at offset ${received} of ${data.length} bytes runs past total_bytes ${expected}`);
        }
        task.upload ??= { bytes: this.options.deltaBuffers?.take() ?? new Uint8Array(expected), received: 0 };
        task.upload.bytes.set(data, received);
        task.upload.received = received + data.length;
        return { receivedBytes: BigInt(task.upload.received) };
      },
      completeTask: async (request) => {
        const task = this.task(request.taskId);
        const { result } = request;
        if (result.case === undefined) throw refuse('Malformed', `CompleteTask for ${task.id} carries no result`);
        if (task.cancelled) {
          this.forget(task);
          return {};
        }
        if (result.case === 'error') {
          this.forget(task);
          const message = result.value.slice(0, TrainerLimits.errorChars);
          task.reject(new TaskFailedError(task.trainer.info.trainerId, task.id, 'error', `trainer ${task.trainer.info.trainerId} failed ${task.kind} task ${task.id}: ${message}`));
          return {};
        }
        if (result.case !== task.kind) throw refuse('WrongTask', `task ${task.id} is a ${task.kind} task, the result is ${result.case}`);
        if (result.case === 'apply' && result.value.modelHash.length !== TrainerLimits.hashBytes) {
          throw refuse('Malformed', `model_hash must be ${TrainerLimits.hashBytes} bytes, got ${result.value.modelHash.length}`);
        }
        let delta: Float32Array | undefined;
        if (task.kind === 'train') {
          const expected = 4 * this.options.paramCount;
          const received = task.upload?.received ?? 0;
          if (task.upload === undefined || received !== expected) {
            throw refuse('IncompleteDelta', `task ${task.id} uploaded ${received} of ${expected} delta bytes; upload the rest before completing it`);
          }
          delta = new Float32Array(task.upload.bytes.buffer, 0, this.options.paramCount);
          // The caller owns the buffer from here (and may give it back to the pool).
          task.upload = undefined;
        }
        this.forget(task);
        task.resolve(delta === undefined ? { result } : { result, delta });
        return {};
      },
      fetchBlob: (request) => this.streamBlob(request.sha256, request.offset),
    };
  }

  private async *join(trainerId: string, group: string, replica: number, device: string, context: CallContext): AsyncGenerator<MessageInitShape<typeof JoinResponseSchema>> {
    if (trainerId.length < 1 || trainerId.length > TrainerLimits.trainerIdChars) {
      throw refuse('Malformed', `trainer_id must be 1 to ${TrainerLimits.trainerIdChars} characters, got ${trainerId.length}`);
    }
    if (group.length < 1 || group.length > TrainerLimits.groupChars) {
      throw refuse('Malformed', `group must be 1 to ${TrainerLimits.groupChars} characters, got ${group.length}`);
    }
    if (device !== 'cuda' && device !== 'cpu') throw refuse('Malformed', `device must be "cuda" or "cpu", got ${JSON.stringify(device.slice(0, 32))}`);
    if (this.closing) throw new RpcError(grpc.status.UNAVAILABLE, 'the coordinator is shutting down');
    // A trainer that joins again (restarted pod, reconnect) replaces its earlier stream; the tasks
    // it held there are lost with that process.
    const earlier = this.sessions.get(trainerId);
    if (earlier !== undefined) this.endSession(earlier, 'it joined again', 'left');
    const session: Session = {
      info: { trainerId, group, replica, device, peerAddress: context.peerAddress, joinedAtMs: Date.now() },
      queue: [], tasks: new Set(), closed: undefined, wake: undefined, progress: undefined,
    };
    this.sessions.set(trainerId, session);
    this.options.onTrainer?.('joined', { ...session.info, tasks: [] });
    for (const wake of [...this.joinWaiters]) wake();
    const onAbort = () => this.wakeSession(session);
    context.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        while (session.queue.length > 0 && session.closed === undefined && !context.signal.aborted) yield session.queue.shift()!;
        if (session.closed !== undefined || context.signal.aborted) return;
        await new Promise<void>((resolve) => { session.wake = resolve; });
      }
    } finally {
      context.signal.removeEventListener('abort', onAbort);
      this.endSession(session, context.signal.aborted ? 'its Join stream was cancelled' : 'its Join stream ended', this.closing ? 'closed' : 'left');
    }
  }

  /** Forgets a trainer and fails its pending tasks; idempotent. */
  private endSession(session: Session, why: string, cause: 'left' | 'closed'): void {
    if (session.closed !== undefined) return;
    session.closed = why;
    if (this.sessions.get(session.info.trainerId) === session) this.sessions.delete(session.info.trainerId);
    session.queue.length = 0;
    const { trainerId } = session.info;
    for (const task of [...session.tasks]) {
      this.forget(task);
      if (!task.cancelled) {
        task.reject(new TaskFailedError(trainerId, task.id, cause, `trainer ${trainerId} left before finishing ${task.kind} task ${task.id}: ${why}`));
      }
    }
    this.wakeSession(session);
    this.options.onTrainer?.('left', { ...session.info, tasks: [] }, why);
  }

  private wakeSession(session: Session): void {
    const wake = session.wake;
    session.wake = undefined;
    wake?.();
  }

  private task(taskId: string): Task {
    const task = this.tasks.get(taskId);
    if (task === undefined) {
      throw refuse('UnknownTask', `no running task ${JSON.stringify(taskId.slice(0, TrainerLimits.taskIdChars))} (unknown, finished, or its trainer left)`);
    }
    return task;
  }

  private forget(task: Task): void {
    this.tasks.delete(task.id);
    task.trainer.tasks.delete(task);
    this.dropUpload(task);
  }

  private dropUpload(task: Task): void {
    if (task.upload !== undefined) this.options.deltaBuffers?.give(task.upload.bytes);
    task.upload = undefined;
  }

  private async *streamBlob(hash: Uint8Array, offset: bigint): AsyncGenerator<EncodedMessage> {
    if (hash.length !== TrainerLimits.hashBytes) throw refuse('Malformed', `sha256 must be ${TrainerLimits.hashBytes} bytes, got ${hash.length}`);
    const blob = this.options.blobs.get(hash);
    if (blob === undefined) throw new RpcError(grpc.status.NOT_FOUND, `no blob ${Buffer.from(hash).toString('hex')} here`);
    const { bytes } = blob;
    if (offset > BigInt(bytes.length)) throw refuse('Malformed', `offset ${offset} is beyond the ${bytes.length}-byte blob`);
    const chunk = this.chunkBytes;
    let at = Number(offset);
    if (at % chunk !== 0) {
      // A resumed transfer starts with the rest of a chunk, encoded for this call.
      const end = Math.min(bytes.length, (Math.floor(at / chunk) + 1) * chunk);
      yield encodeChunkMessage(at, bytes.length, bytes.subarray(at, end));
      at = end;
    }
    // Whole chunks come from the blob's encoding (made once and shared, for a cached blob).
    yield* blob.chunkMessages(chunk, at / chunk);
  }
}

function progressOf(request: ReportProgressRequest): TrainerProgress {
  return {
    taskId: request.taskId, step: request.step, loss: request.loss, tokens: request.tokens,
    tokensPerSecond: request.tokensPerSecond, atMs: Date.now(),
  };
}
