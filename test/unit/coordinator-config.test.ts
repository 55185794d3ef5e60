import { describe, expect, it } from '@jest/globals';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { encodePublicKey, generateIdentity } from '../../operator/src/federation/identity.js';

const key = encodePublicKey(generateIdentity().publicKey);
const valid = `
name: alpha
runId: team-a/gpt
identityFile: /keys/alpha.pem
listen: 0.0.0.0:7070
trainerListen: 0.0.0.0:7071
train:
  model: {vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2}
rounds: {runSeed: 7, rounds: 3, windowSeconds: 5, compression: {chunk: 1024, topk: 16, bits: 2}}
peers:
  - {name: beta, endpoint: "beta.example:7070", publicKey: "${key}"}
`;

describe('coordinator config', () => {
  it('parses a valid file', () => {
    const config = parseCoordinatorConfig(valid);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 7070 });
    expect(config.peers[0]!.publicKey.toString('base64')).toBe(key);
    expect(config.peers[0]).toMatchObject({ weight: 1 }); // Peer spec.weight's default
    expect(config.checkpointEveryRounds).toBe(1);
    expect(config.peers[0]!.maxContributionBytes).toBeUndefined(); // the run's limit applies
    expect(parseCoordinatorConfig(valid.replace(`"${key}"}`, `"${key}", weight: 0.25, maxContributionBytes: 4096}`)).peers[0]).toMatchObject({ weight: 0.25, maxContributionBytes: 4096 });
    expect(config.trainerListen).toEqual({ host: '0.0.0.0', port: 7071 });
    expect(config.train.model.dModel).toBe(32);
    expect(config.rounds).toMatchObject({ runSeed: 7n, rounds: 3, windowMs: 5000, graceMs: 10_000, compression: { chunk: 1024, k: 16, bits: 2, errorDecay: 0.95 } });
    // Bounds on claims: defaults, and a run's own.
    expect(config.rounds.claims).toEqual({ maxTokensPerRound: undefined, relativeTokenCap: 2, maxShare: 0.5 });
    const claims = parseCoordinatorConfig(valid.replace('bits: 2}}', 'bits: 2}, claims: {maxTokensPerRound: 65536, relativeTokenCap: 3, maxShare: 0.25}}')).rounds.claims;
    expect(claims).toEqual({ maxTokensPerRound: 65536, relativeTokenCap: 3, maxShare: 0.25 });
  });

  it.each([
    [valid.replace('name: alpha\n', ''), /^name: is required/],
    [valid.replace('0.0.0.0:7070', '7070'), /^listen: must be a string, got number 7070/],
    [valid.replace('0.0.0.0:7070', 'localhost'), /^listen: must be host:port, got "localhost"/],
    [valid.replace(`"${key}"`, '"abc"'), /^peers\[0\]\.publicKey: public key must be base64 of 32 bytes/],
    [valid.replace('beta.example:7070', 'beta.example:99999'), /^peers\[0\]\.endpoint: must be host:port/],
    [valid.replace('peers:', 'peers: 3\nx:'), /^peers: must be a list/],
    [`${valid}  - {name: beta, endpoint: "b:1", publicKey: "${key}"}\n`, /^peers\[1\]\.name: "beta" is listed twice/],
    [valid.replace(`"${key}"}`, `"${key}", weight: 1.5}`), /^peers\[0\]\.weight: must be a number from 0 to 1, got 1\.5/],
    [valid.replace(`"${key}"}`, `"${key}", weight: "high"}`), /^peers\[0\]\.weight: must be a number from 0 to 1/],
    [valid.replace(`"${key}"}`, `"${key}", maxContributionBytes: 10}`), /^peers\[0\]\.maxContributionBytes: must be an integer from 1024/],
    [valid.replace(`"${key}"}`, `"${key}", colour: blue}`), /^peers\[0\]\.colour: unknown field/],
    ['name: [', /^\(file\): not valid YAML/],
    [valid.replace('dModel: 32', 'dModel: 0'), /^train\.model\.dModel: /],
    [valid.replace('heads: 2}', 'heads: 2}\n  data: {dir: /data}'), /^train\.data\.hash: is required with train\.data\.dir: a federated run pins its dataset/],
    [valid.replace('heads: 2}', 'heads: 2}\n  data: {dir: /data, hash: abc}'), /^train\.data\.hash: must be a dataset hash \(64 hex digits\)/],
    [valid.replace('runSeed: 7, ', ''), /^rounds\.runSeed: is required/],
    [valid.replace('topk: 16', 'topk: 2048'), /^rounds\.compression\.topk: must be at most chunk/],
    [valid.replace('windowSeconds: 5', 'windowSeconds: 0'), /^rounds\.windowSeconds: must be 0\.1 to 86400/],
    [valid.replace('bits: 2}}', 'bits: 2}, deliveryBoundSeconds: 10}'), /^rounds\.deliveryBoundSeconds: must be less than graceSeconds \(10\)/],
    [valid.replace('bits: 2}}', 'bits: 2}, deliveryBoundSeconds: 0}'), /^rounds\.deliveryBoundSeconds: must be 0\.01 to 3600, got 0/],
    [valid.replace('trainerListen: 0.0.0.0:7071\n', ''), /^trainerListen: is required/],
    [`${valid}colour: blue\n`, /^colour: unknown field/],
    [valid.replace('bits: 2}}', 'bits: 2}, claims: {maxShare: 0}}'), /^rounds\.claims\.maxShare: must be 0\.01 to 1, got 0/],
    [valid.replace('bits: 2}}', 'bits: 2}, claims: {relativeTokenCap: 0.5}}'), /^rounds\.claims\.relativeTokenCap: must be 1 to 1000/],
    [valid.replace('bits: 2}}', 'bits: 2}, claims: {maxTokensPerRound: 1.5}}'), /^rounds\.claims\.maxTokensPerRound: must be an integer/],
    [valid.replace('bits: 2}}', 'bits: 2}, claims: {share: 1}}'), /^rounds\.claims\.share: unknown field/],
    [`${valid}checkpointEveryRounds: 0\n`, /^checkpointEveryRounds: must be a positive integer, got 0/],
  ])('refuses a bad file naming the field (%#)', (text, message) => {
    expect(() => parseCoordinatorConfig(text)).toThrow(message);
  });
});
