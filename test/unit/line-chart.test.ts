import { describe, expect, it } from '@jest/globals';
import { formatTick, lineChart, niceRange } from '../../trainer/src/report/line-chart.js';

describe('line chart', () => {
  it('picks round ticks that cover the data', () => {
    expect(niceRange(0.3, 9.6)).toEqual({ min: 0, max: 10, ticks: [0, 2, 4, 6, 8, 10] });
    const r = niceRange(3.14, 3.2);
    expect(r.min).toBeLessThanOrEqual(3.14);
    expect(r.max).toBeGreaterThanOrEqual(3.2);
    expect(r.ticks.length).toBeGreaterThanOrEqual(3);
  });

  it('labels ticks briefly', () => {
    expect([1_500_000, 20_000, 500, 0.25, 0].map(formatTick)).toEqual(['1.5M', '20k', '500', '0.25', '0']);
  });

  it('draws one polyline per series with its points inside the plot, and a legend', () => {
    const svg = lineChart({ title: 'loss <1>', xLabel: 'step', yLabel: 'nats', series: [
      { name: 'train', points: [[0, 8], [10, 6], [20, 5]] },
      { name: 'floor', points: [[0, 7], [20, 7]], dashed: true },
    ] });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray');
    expect(svg).toContain('loss &lt;1&gt;');
    const coordinates = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => m[1]!.split(' ').map((p) => p.split(',').map(Number)));
    for (const [x, y] of coordinates) {
      expect(x).toBeGreaterThanOrEqual(64);
      expect(x).toBeLessThanOrEqual(720 - 16);
      expect(y).toBeGreaterThanOrEqual(36);
      expect(y).toBeLessThanOrEqual(400 - 48);
    }
    expect(() => lineChart({ title: '', xLabel: '', yLabel: '', series: [{ name: 'x', points: [[0, NaN]] }] })).toThrow(/no finite points/);
  });
});
