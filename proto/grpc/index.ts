// A small typed adapter between protobuf-es v2 service descriptors and @grpc/grpc-js:
// unary and server-streaming methods, deadlines, message size limits, and gRPC status codes
// carried as RpcError on both ends.
export { addService, listen, shutdown, type CallContext, type ServeOptions, type ServiceImplementation } from './server.js';
export { createClient, DEFAULT_MAX_MESSAGE_BYTES, type CallOptions, type ClientOptions, type ServiceClient } from './client.js';
export { RpcError, REASON_METADATA_KEY, fromServiceError, toServiceStatus } from './errors.js';
export { asBuffer, EncodedMessage, encodeChunkMessage, encodeChunkMessages } from './encoded.js';
