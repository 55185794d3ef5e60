import { describe, expect, it } from '@jest/globals';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FetchCheckpointResponseSchema, FetchContributionResponseSchema } from '../../proto/gen/concord/v1/federation_pb.js';
import { FetchBlobResponseSchema } from '../../proto/gen/concord/v1/trainer_pb.js';
import { encodeChunkMessage, encodeChunkMessages } from '../../proto/grpc/index.js';

describe('hand-encoded chunk messages', () => {
  it.each([
    [0, 0, 0],
    [0, 1000, 1000],
    [4 * 1024 * 1024, 64 * 1024 * 1024, 4 * 1024 * 1024],
    [2 ** 40 + 3, 2 ** 41, 17],
    [127, 128, 1],
  ])('encodes offset %d, total %d, %d data bytes exactly as protobuf-es does, for every chunk message', (offset, total, length) => {
    const data = Buffer.alloc(length, 0xab);
    const mine = Buffer.from(encodeChunkMessage(offset, total, data).bytes);
    for (const schema of [FetchContributionResponseSchema, FetchCheckpointResponseSchema, FetchBlobResponseSchema]) {
      const reference = toBinary(schema, create(schema, { offset: BigInt(offset), totalBytes: BigInt(total), data }));
      expect(mine.equals(Buffer.from(reference))).toBe(true);
      const decoded = fromBinary(schema, mine);
      expect(decoded.offset).toBe(BigInt(offset));
      expect(decoded.data.length).toBe(length);
    }
  });

  it('lays out a whole payload as the same messages, one view per chunk', () => {
    const payload = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    const messages = encodeChunkMessages(payload, 4096);
    expect(messages).toHaveLength(3);
    messages.forEach((message, i) => {
      const offset = i * 4096;
      const expected = encodeChunkMessage(offset, payload.length, payload.subarray(offset, offset + 4096)).bytes;
      expect(Buffer.from(message.bytes).equals(Buffer.from(expected))).toBe(true);
    });
    // All views of one buffer: no copy per message.
    expect(new Set(messages.map((m) => m.bytes.buffer)).size).toBe(1);
  });
});
