/**
 * A small SVG line chart (loss curves and the like): axes with round ticks, one polyline per
 * series, a legend. Plain SVG 1.1, readable in any browser and on GitHub.
 */
export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  /** Dashed line, e.g. for a reference level. */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** Fixed y range; by default the data's, padded. */
  yRange?: readonly [number, number];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 400;
  const margin = { left: 64, right: 16, top: 36, bottom: 48 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const all = options.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) throw new Error('lineChart: no finite points to plot');
  const xs = niceRange(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])));
  const ys = options.yRange ? niceRange(options.yRange[0], options.yRange[1]) : niceRange(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])));
  const px = (x: number) => margin.left + ((x - xs.min) / (xs.max - xs.min)) * plotWidth;
  const py = (y: number) => margin.top + plotHeight - ((y - ys.min) / (ys.max - ys.min)) * plotHeight;

  const parts = [...chartStart(width, height, options.title), ...xGrid(xs.ticks, px, margin.top, margin.top + plotHeight)];
  for (const tick of ys.ticks) {
    parts.push(`<line x1="${margin.left}" y1="${py(tick)}" x2="${margin.left + plotWidth}" y2="${py(tick)}" stroke="#eee"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${py(tick) + 4}" text-anchor="end">${formatTick(tick)}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotWidth / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`);
  // Legend in the top-right corner, as wide as its longest name (about 7 px a character).
  const legendX = margin.left + plotWidth - 36 - 7 * Math.max(...options.series.map((s) => s.name.length));
  options.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points = series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    if (points.length > 0) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5"${series.dashed ? ' stroke-dasharray="6 4"' : ''} points="${points.join(' ')}"/>`);
    }
    const ly = margin.top + 14 + i * 16;
    parts.push(`<line x1="${legendX}" y1="${ly - 4}" x2="${legendX + 20}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${legendX + 25}" y="${ly}">${escapeXml(series.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** The opening of a chart: the svg element, a white background and the title. */
export function chartStart(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
}

/** Vertical grid lines from `top` to `bottom` at the x ticks, labelled below. */
export function xGrid(ticks: readonly number[], px: (x: number) => number, top: number, bottom: number): string[] {
  return ticks.flatMap((tick) => [
    `<line x1="${px(tick)}" y1="${top}" x2="${px(tick)}" y2="${bottom}" stroke="#eee"/>`,
    `<text x="${px(tick)}" y="${bottom + 16}" text-anchor="middle">${formatTick(tick)}</text>`,
  ]);
}

/** A range widened to round numbers, with 4–8 ticks at 1, 2 or 5 × 10^k. */
export function niceRange(min: number, max: number): { min: number; max: number; ticks: number[] } {
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = low; t <= high + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { min: low, max: high, ticks };
}

/** 1500000 → "1.5M", 20000 → "20k", 0.25 → "0.25". */
export function formatTick(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  const short = (v: number) => Number(v.toPrecision(3)).toString();
  if (abs >= 1e9) return `${short(value / 1e9)}G`;
  if (abs >= 1e6) return `${short(value / 1e6)}M`;
  if (abs >= 1e4) return `${short(value / 1e3)}k`;
  if (abs < 1e-3) return value.toExponential(1);
  return Number(value.toPrecision(6)).toString();
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
