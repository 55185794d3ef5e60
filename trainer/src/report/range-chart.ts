/**
 * A small SVG chart of one value per row with its range (e.g. the mean final loss of each arm of
 * a study, and the spread over seeds): a dot at the value, a bar from min to max, and vertical
 * reference lines (e.g. the baseline arms). Plain SVG 1.1, as line-chart.ts.
 */
import { chartStart, escapeXml, niceRange, xGrid } from './line-chart.js';

export interface RangeRow {
  name: string;
  value: number;
  min: number;
  max: number;
  /** Drawn in the accent colour (e.g. a row that misses its goal). */
  highlight?: boolean;
}

export interface RangeChartOptions {
  title: string;
  xLabel: string;
  rows: readonly RangeRow[];
  references?: ReadonlyArray<{ name: string; value: number }>;
  width?: number;
}

const ROW = 20;

export function rangeChart(options: RangeChartOptions): string {
  if (options.rows.length === 0) throw new Error('rangeChart: no rows');
  const width = options.width ?? 720;
  const margin = { left: 8 + 7 * Math.max(...options.rows.map((r) => r.name.length)), right: 24, top: 52, bottom: 48 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = ROW * options.rows.length;
  const height = margin.top + plotHeight + margin.bottom;
  const values = [...options.rows.flatMap((r) => [r.min, r.max, r.value]), ...(options.references ?? []).map((r) => r.value)].filter(Number.isFinite);
  const xs = niceRange(Math.min(...values), Math.max(...values));
  const px = (x: number) => margin.left + ((x - xs.min) / (xs.max - xs.min)) * plotWidth;
  const parts = [...chartStart(width, height, options.title), ...xGrid(xs.ticks, px, margin.top, margin.top + plotHeight)];
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`);
  options.rows.forEach((row, i) => {
    const y = margin.top + ROW * i + ROW / 2;
    const color = row.highlight ? '#d62728' : '#1f77b4';
    parts.push(`<text x="${margin.left - 6}" y="${y + 4}" text-anchor="end">${escapeXml(row.name)}</text>`);
    parts.push(`<line x1="${px(row.min).toFixed(1)}" y1="${y}" x2="${px(row.max).toFixed(1)}" y2="${y}" stroke="${color}" stroke-width="3" stroke-opacity="0.4"/>`);
    parts.push(`<circle cx="${px(row.value).toFixed(1)}" cy="${y}" r="4" fill="${color}"/>`);
  });
  (options.references ?? []).forEach((reference, i) => {
    const x = px(reference.value).toFixed(1);
    parts.push(`<line x1="${x}" y1="${margin.top}" x2="${x}" y2="${margin.top + plotHeight}" stroke="#555" stroke-dasharray="5 4"/>`);
    parts.push(`<text x="${x}" y="${margin.top - 4 - 12 * (i % 2)}" text-anchor="middle" font-size="11">${escapeXml(reference.name)}</text>`);
  });
  parts.push(`<text x="${margin.left + plotWidth / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
