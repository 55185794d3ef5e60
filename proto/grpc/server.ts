import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { asBuffer, EncodedMessage } from './encoded.js';
import { RpcError, toServiceStatus } from './errors.js';

type SurfaceCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>;

/** What a handler knows about the call besides the request. */
export interface CallContext {
  /** The remote address as grpc-js reports it, e.g. `ipv4:127.0.0.1:53412`. */
  readonly peerAddress: string;
  /** The full method path, e.g. `/concord.v1.FederationService/Hello`. */
  readonly method: string;
  /** Aborted when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** Size of the request as received, in bytes. */
  readonly requestBytes: number;
}

/** What a handler returns: a message to encode, or one it encoded itself. */
type Output<O extends DescMessage> = MessageInitShape<O> | EncodedMessage;

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<Output<O>>;

type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => AsyncIterable<Output<O>>;

/** One handler per method of a protobuf-es service; the method kind decides the shape. */
export type ServiceImplementation<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]['methodKind'] extends 'unary'
    ? UnaryHandler<S[K]['input'], S[K]['output']>
    : S[K]['methodKind'] extends 'server_streaming'
      ? ServerStreamingHandler<S[K]['input'], S[K]['output']>
      : never;
};

export interface ServeOptions {
  /**
   * Largest request the adapter decodes, in bytes; a larger one is refused with
   * RESOURCE_EXHAUSTED / `TooLarge` (and reaches `onError`). Set the server's
   * `grpc.max_receive_message_length` above this so that the adapter, not grpc-js, sees it.
   */
  maxRequestBytes?: number;
  /** Called with every error sent to a client: count refusals here. */
  onError?: (error: RpcError, method: string) => void;
  /** Called with errors that are not RpcErrors (bugs); the client only sees `internal error`. */
  onInternalError?: (error: unknown, method: string) => void;
}

/**
 * Adds a protobuf-es service to a grpc-js server. Requests travel as raw bytes and are decoded
 * here, so a request that does not decode is refused as INVALID_ARGUMENT / `Malformed` like any
 * other bad input instead of grpc-js's generic INTERNAL. Streams respect back-pressure.
 */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  implementation: ServiceImplementation<S>,
  options: ServeOptions = {},
): void {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const path = `/${service.typeName}/${method.name}`;
    const handler = (implementation as Record<string, unknown>)[method.localName];
    if (typeof handler !== 'function') throw new Error(`no handler for ${path}`);
    if (method.methodKind !== 'unary' && method.methodKind !== 'server_streaming') {
      throw new Error(`${path}: ${method.methodKind} methods are not supported by this adapter`);
    }
    const streaming = method.methodKind === 'server_streaming';
    definition[method.name] = {
      path,
      originalName: method.localName,
      requestStream: false,
      responseStream: streaming,
      requestSerialize: (bytes: Buffer) => bytes,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (bytes: Buffer) => bytes,
      responseDeserialize: (bytes: Buffer) => bytes,
    };
    const fail = (error: unknown): Partial<grpc.StatusObject> => {
      if (error instanceof RpcError) options.onError?.(error, path);
      else options.onInternalError?.(error, path);
      return toServiceStatus(error);
    };
    const decode = (bytes: Buffer, call: SurfaceCall, signal: AbortSignal) => {
      if (options.maxRequestBytes !== undefined && bytes.length > options.maxRequestBytes) {
        throw new RpcError(
          grpc.status.RESOURCE_EXHAUSTED,
          `request of ${bytes.length} bytes exceeds the limit of ${options.maxRequestBytes}`,
          'TooLarge',
        );
      }
      let request;
      try {
        request = fromBinary(method.input, bytes);
      } catch (error) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `request does not decode as ${method.input.typeName}: ${(error as Error).message}`, 'Malformed');
      }
      const context: CallContext = { peerAddress: call.getPeer(), method: path, signal, requestBytes: bytes.length };
      return { request, context };
    };
    const encode = (message: Output<DescMessage>): Buffer =>
      asBuffer(message instanceof EncodedMessage ? message.bytes : toBinary(method.output, create(method.output, message)));

    if (!streaming) {
      const unary = handler as UnaryHandler<DescMessage, DescMessage>;
      handlers[method.name] = ((call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const abort = abortOnCancel(call);
        void (async () => {
          try {
            const { request, context } = decode(call.request, call, abort.signal);
            callback(null, encode(await unary(request, context)));
          } catch (error) {
            callback(fail(error), null);
          } finally {
            abort.dispose();
          }
        })();
      }) as grpc.handleUnaryCall<Buffer, Buffer>;
    } else {
      const stream = handler as ServerStreamingHandler<DescMessage, DescMessage>;
      handlers[method.name] = ((call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const abort = abortOnCancel(call);
        void (async () => {
          try {
            const { request, context } = decode(call.request, call, abort.signal);
            const window = new WriteWindow(STREAM_MESSAGES_IN_FLIGHT, abort.signal);
            for await (const message of stream(request, context)) {
              if (abort.signal.aborted) return;
              call.write(encode(message), window.written);
              await window.admit();
            }
            if (abort.signal.aborted) return;
            call.end();
          } catch (error) {
            if (abort.signal.aborted) return; // the client is gone: nobody to tell
            call.emit('error', fail(error));
          } finally {
            abort.dispose();
          }
        })();
      }) as grpc.handleServerStreamingCall<Buffer, Buffer>;
    }
  }
  server.addService(definition as grpc.ServiceDefinition, handlers);
}

/**
 * Messages a stream hands grpc-js before waiting for the oldest to be written out. grpc-js sends
 * one message at a time; two keep the next one ready while the current one goes out, without
 * the bursts that waiting for 'drain' makes (highWaterMark: 16 messages queued, then an empty
 * pipe).
 */
const STREAM_MESSAGES_IN_FLIGHT = 2;

/** Counts messages handed to grpc-js and not yet written; `admit` waits while there are too many. */
class WriteWindow {
  private inFlight = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly limit: number, private readonly signal: AbortSignal) {
    // grpc-js never calls back for a cancelled call: the abort wakes the loop instead.
    signal.addEventListener('abort', () => this.resume(), { once: true });
  }

  /** The write callback: one message is out. */
  readonly written = (): void => {
    this.inFlight--;
    this.resume();
  };

  async admit(): Promise<void> {
    this.inFlight++;
    while (this.inFlight >= this.limit && !this.signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private resume(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** An AbortSignal that fires when the client cancels the call or its deadline passes. */
function abortOnCancel(call: SurfaceCall): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onCancel = () => controller.abort(new RpcError(grpc.status.CANCELLED, 'cancelled by the client'));
  call.on('cancelled', onCancel);
  return { signal: controller.signal, dispose: () => call.removeListener('cancelled', onCancel) };
}

/** Binds `server` to `host:port` (plaintext h2c); resolves to the bound port (0: any free one). */
export function listen(server: grpc.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(error);
      else resolve(bound);
    });
  });
}

/** Stops accepting calls, lets running ones finish for up to `graceMs`, then cuts them. */
export function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
