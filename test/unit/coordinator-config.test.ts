import { describe, expect, it } from '@jest/globals';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { encodePublicKey, generateIdentity } from '../../operator/src/federation/identity.js';

const key = encodePublicKey(generateIdentity().publicKey);
const valid = `
name: alpha
runId: team-a/gpt
identityFile: /keys/alpha.pem
listen: 0.0.0.0:7070
peers:
  - {name: beta, endpoint: "beta.example:7070", publicKey: "${key}"}
`;

describe('coordinator config', () => {
  it('parses a valid file', () => {
    const config = parseCoordinatorConfig(valid);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 7070 });
    expect(config.peers[0]!.publicKey.toString('base64')).toBe(key);
  });

  it.each([
    [valid.replace('name: alpha\n', ''), /^name: is required/],
    [valid.replace('0.0.0.0:7070', '7070'), /^listen: must be a string, got number 7070/],
    [valid.replace('0.0.0.0:7070', 'localhost'), /^listen: must be host:port, got "localhost"/],
    [valid.replace(`"${key}"`, '"abc"'), /^peers\[0\]\.publicKey: public key must be base64 of 32 bytes/],
    [valid.replace('beta.example:7070', 'beta.example:99999'), /^peers\[0\]\.endpoint: must be host:port/],
    [valid.replace('peers:', 'peers: 3\nx:'), /^peers: must be a list/],
    [`${valid}  - {name: beta, endpoint: "b:1", publicKey: "${key}"}\n`, /^peers\[1\]\.name: "beta" is listed twice/],
    ['name: [', /^\(file\): not valid YAML/],
  ])('refuses a bad file naming the field (%#)', (text, message) => {
    expect(() => parseCoordinatorConfig(text)).toThrow(message);
  });
});
