// Size limits of the federation protocol, as documented in proto/concord/v1/*.proto.
// A receiver checks each before it decodes or allocates anything larger.

const KiB = 1024;
const MiB = 1024 * KiB;

export const Limits = {
  /** Encoded EnvelopeHeader. */
  headerBytes: 1 * KiB,
  /** Encoded body of a control message. */
  bodyBytes: 1 * MiB,
  /** A unary request or response on the wire (an envelope plus framing). */
  unaryMessageBytes: 2 * MiB,
  /** Data in one chunk of a streamed payload. */
  chunkBytes: 4 * MiB,
  /**
   * What grpc-js itself accepts. Larger than every limit above so that oversized messages reach
   * Concord's checks and are refused (and counted) as `TooLarge`; beyond it grpc-js refuses them
   * with RESOURCE_EXHAUSTED before any Concord code runs.
   */
  transportMessageBytes: 16 * MiB,
  runIdChars: 253,
  noteChars: 256,
  publicKeyBytes: 32,
  signatureBytes: 64,
  nonceBytes: 32,
  sessionIdBytes: 16,
  hashBytes: 32,
  bodyTypeChars: 128,
  /** Contribution statements in one Announcement (federation.proto). */
  announcedContributions: 256,
  /** Relay signatures on one RelayedManifest (federation.proto). */
  relaysPerManifest: 64,
} as const;

export const PROTOCOL = 'concord/1';
