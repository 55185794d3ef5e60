import { describe, expect, it } from '@jest/globals';
import { formatTick, lineChart, niceRange } from '../../trainer/src/report/line-chart.js';
import { rangeChart } from '../../trainer/src/report/range-chart.js';

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

describe('range chart', () => {
  it('draws a row per value with its range, in order, and reference lines at their values', () => {
    const svg = rangeChart({
      title: 'final loss', xLabel: 'nats', references: [{ name: 'baseline', value: 5 }],
      rows: [{ name: 'a', value: 5.2, min: 5.1, max: 5.3 }, { name: 'b <x>', value: 6, min: 5.5, max: 6.5, highlight: true }],
    });
    expect(svg).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect(svg).toContain('b &lt;x&gt;');
    const dots = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="4" fill="(#[0-9a-f]+)"/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), color: m[3] }));
    expect(dots).toHaveLength(2);
    expect(dots[1]!.y).toBeGreaterThan(dots[0]!.y);
    expect(dots[1]!.x).toBeGreaterThan(dots[0]!.x);
    expect(dots.map((d) => d.color)).toEqual(['#1f77b4', '#d62728']);
    // The range bar of b spans five times a's (1.0 against 0.2), to the drawing's 0.1 px.
    const bars = [...svg.matchAll(/<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)" y2="[\d.]+" stroke="#[0-9a-f]+" stroke-width="3"/g)].map((m) => Number(m[2]) - Number(m[1]));
    expect(bars[1]! / bars[0]!).toBeCloseTo(5, 1);
    const reference = /<line x1="([\d.]+)"[^>]*stroke-dasharray="5 4"/.exec(svg)!;
    expect(Number(reference[1])).toBeLessThan(dots[0]!.x);
    expect(() => rangeChart({ title: 't', xLabel: 'x', rows: [] })).toThrow(/no rows/);
  });
});
