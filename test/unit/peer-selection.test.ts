import { describe, expect, it } from '@jest/globals';
import { peersOfRun, selectorMatches, selectorProblem } from '../../operator/src/controllers/peer-selection.js';
import { validateRun } from '../../operator/src/controllers/trainingrun/run-config.js';
import { defaultedPeer, defaultedRun } from '../support/crd-defaults.js';

describe('label selectors, as Kubernetes reads them', () => {
  const labels = { tier: 'gold', region: 'eu' };

  it('matches everything when absent or empty', () => {
    expect(selectorMatches(undefined, undefined)).toBe(true);
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: {}, matchExpressions: [] }, undefined)).toBe(true);
  });

  it('needs every matchLabels pair', () => {
    expect(selectorMatches({ matchLabels: { tier: 'gold' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { tier: 'gold', region: 'us' } }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { tier: 'gold' } }, undefined)).toBe(false);
  });

  it('reads In, NotIn, Exists and DoesNotExist, and ANDs everything', () => {
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold', 'silver'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['silver'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'In', values: ['x'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['silver'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'NotIn', values: ['x'] }] }, labels)).toBe(true); // absent: not in
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gold'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'region', operator: 'Exists' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'DoesNotExist' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { region: 'eu' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['silver'] }] }, labels)).toBe(false);
  });

  it('names the field of an expression the schema lets through on clusters without CEL', () => {
    expect(selectorProblem({ matchExpressions: [{ key: 'a', operator: 'Exists' }, { key: 'b', operator: 'In', values: [] }] }, 'spec.federation.peerSelector'))
      .toEqual({ field: 'spec.federation.peerSelector.matchExpressions[1].values', problem: 'operator In needs at least one value' });
    expect(selectorProblem({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] }, 'f')?.problem).toBe('operator DoesNotExist takes no values');
    expect(selectorProblem(undefined, 'f')).toBeUndefined();
    const run = defaultedRun({ federation: { peerSelector: { matchExpressions: [{ key: 'a', operator: 'NotIn' }] } } });
    expect(() => validateRun(run)).toThrow('spec.federation.peerSelector.matchExpressions[0].values: operator NotIn needs at least one value');
  });
});

describe('the Peers of a run', () => {
  it('are those naming it in runRef that its peerSelector selects', () => {
    const run = defaultedRun({ federation: { peerSelector: { matchLabels: { 'concord.dev/partner': 'yes' } } } });
    const labelled = (name: string, value: string | undefined, runName = run.metadata.name) => {
      const peer = defaultedPeer(name, { publicKey: 'k' }, runName);
      if (value !== undefined) peer.metadata.labels = { 'concord.dev/partner': value };
      return peer;
    };
    const { selected, unselected } = peersOfRun(run, [labelled('in', 'yes'), labelled('out', 'no'), labelled('bare', undefined), labelled('other-run', 'yes', 'other')]);
    expect(selected.map((p) => p.metadata.name)).toEqual(['in']);
    expect(unselected.map((p) => p.metadata.name)).toEqual(['out', 'bare']);
    // Without a selector every Peer naming the run is in.
    const open = defaultedRun();
    expect(peersOfRun(open, [labelled('in', 'yes', open.metadata.name), labelled('bare', undefined, open.metadata.name)]).selected).toHaveLength(2);
  });
});
