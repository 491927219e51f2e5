/**
 * Inline SVG plots for report.html: a line chart (parameters vs accuracy, loss curves) and a
 * stacked bar chart (time per phase), as strings with no script, no external assets and no
 * `xmlns` URL (inline SVG in HTML does not need one).
 *
 * Scales and "nice" ticks are a few lines of arithmetic, written here rather than pulled in
 * from d3. Every value is checked: non-finite numbers are gaps in a line (or marked when the
 * caller asks), a single point or a flat series gets a padded domain, and an empty chart says
 * why it is empty. Every piece of text goes through `escapeHtml`. Colours are the Okabe-Ito
 * palette (colour-blind safe), and series also differ by marker shape and dash pattern.
 */

/** Escapes text for HTML/SVG element content and double- or single-quoted attribute values. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "\"" ? "&quot;" : "&#39;")

/** Okabe-Ito, ordered so the first colours are the most distinct from each other. */
export const palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"] as const

export type MarkerShape = "circle" | "square" | "triangle" | "diamond" | "cross"
export const markerShapes: ReadonlyArray<MarkerShape> = ["circle", "square", "triangle", "diamond", "cross"]
export const dashPatterns: ReadonlyArray<string | undefined> = [undefined, "6 3", "2 3", "8 3 2 3"]

const finite = (v: number): boolean => Number.isFinite(v)

/** Rounds away floating-point noise so `0.1 * 3` prints as 0.3 (and -0 as 0). */
const clean = (v: number): number => Number.parseFloat(v.toPrecision(12)) || 0

/** A step of 1, 2 or 5 × 10^k giving about `count` intervals over [lo, hi] (lo < hi). */
export const tickStep = (lo: number, hi: number, count: number): number => {
  const raw = (hi - lo) / Math.max(1, count)
  const power = 10 ** Math.floor(Math.log10(raw))
  const error = raw / power
  const factor = error >= 7.5 ? 10 : error >= 3.5 ? 5 : error >= 1.5 ? 2 : 1
  return factor * power
}

export interface Domain {
  readonly lo: number
  readonly hi: number
  readonly ticks: ReadonlyArray<number>
  readonly step: number
}

export interface DomainOptions {
  /** Hard limits the domain never crosses (e.g. 0..100 for a percentage). */
  readonly clamp?: readonly [number, number]
  /** Always include this value (e.g. 0 for seconds). */
  readonly include?: number
  /** Ticks must be integers (steps, iterations). */
  readonly integer?: boolean
  readonly ticks?: number
}

/**
 * A domain covering the finite `values`, widened to whole tick steps. One value (or all equal)
 * is padded so it sits in the middle of the axis; no finite value gives [0, 1].
 */
export const niceDomain = (values: ReadonlyArray<number>, options: DomainOptions = {}): Domain => {
  const xs = values.filter(finite)
  if (options.include !== undefined) xs.push(options.include)
  // A loop, not Math.min(...xs): spreading a long array overflows the call stack.
  let lo = xs.length > 0 ? xs.reduce((a, b) => Math.min(a, b)) : 0
  let hi = xs.length > 0 ? xs.reduce((a, b) => Math.max(a, b)) : 1
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.05
    lo -= pad
    hi += pad
  }
  const [min, max] = options.clamp ?? [-Infinity, Infinity]
  lo = Math.max(min, lo)
  hi = Math.min(max, hi)
  if (hi <= lo) hi = lo + 1
  let step = tickStep(lo, hi, options.ticks ?? 5)
  if (options.integer) step = Math.max(1, Math.round(step))
  const niceLo = Math.max(min, Math.floor(clean(lo / step)) * step)
  const niceHi = Math.min(max, Math.ceil(clean(hi / step)) * step)
  const ticks: Array<number> = []
  for (let t = Math.ceil(clean(niceLo / step)) * step; t <= niceHi + step * 1e-9; t += step) ticks.push(clean(t))
  return { lo: clean(niceLo), hi: clean(niceHi), ticks, step }
}

/** Maps [lo, hi] onto [from, to] (from > to for an upward y axis or a reversed x axis). */
export const linear = (domain: Domain, from: number, to: number) => (v: number): number =>
  from + ((v - domain.lo) / (domain.hi - domain.lo)) * (to - from)

/** Tick label with as many decimals as the step needs; thousands separated. */
export const formatTick = (v: number, step: number): string => {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)))
  return v.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
}

const r = (v: number): string => (Math.round(v * 10) / 10).toString()

/** Text width estimate for 12px sans-serif: enough to lay out a legend without measuring. */
const textWidth = (text: string, size = 12): number => text.length * size * 0.58

export const marker = (shape: MarkerShape, x: number, y: number, color: string, size = 4, title?: string): string => {
  const t = title !== undefined ? `<title>${escapeHtml(title)}</title>` : ""
  const fill = `fill="${color}" stroke="#fff" stroke-width="1"`
  switch (shape) {
    case "circle":
      return `<circle cx="${r(x)}" cy="${r(y)}" r="${size}" ${fill}>${t}</circle>`
    case "square":
      return `<rect x="${r(x - size)}" y="${r(y - size)}" width="${size * 2}" height="${size * 2}" ${fill}>${t}</rect>`
    case "triangle":
      return `<path d="M${r(x)} ${r(y - size * 1.2)}L${r(x + size * 1.1)} ${r(y + size * 0.8)}L${r(x - size * 1.1)} ${r(y + size * 0.8)}Z" ${fill}>${t}</path>`
    case "diamond":
      return `<path d="M${r(x)} ${r(y - size * 1.3)}L${r(x + size * 1.1)} ${r(y)}L${r(x)} ${r(y + size * 1.3)}L${r(x - size * 1.1)} ${r(y)}Z" ${fill}>${t}</path>`
    case "cross":
      return `<path d="M${r(x - size)} ${r(y - size)}L${r(x + size)} ${r(y + size)}M${r(x + size)} ${r(y - size)}L${r(x - size)} ${r(y + size)}" stroke="${color}" stroke-width="2.2" fill="none">${t}</path>`
  }
}

export interface LegendItem {
  readonly label: string
  readonly color: string
  readonly kind: "line" | "box" | "band"
  readonly marker?: MarkerShape | undefined
  readonly dash?: string | undefined
}

/** Legend items laid out left to right from (x, y), wrapping at `maxWidth`; returns markup and height used. */
const legend = (items: ReadonlyArray<LegendItem>, x: number, y: number, maxWidth: number): { svg: string; height: number } => {
  if (items.length === 0) return { svg: "", height: 0 }
  const rowHeight = 18
  let cx = x
  let cy = y + 9
  const parts: Array<string> = []
  for (const item of items) {
    const w = 30 + textWidth(item.label) + 16
    if (cx > x && cx + w > x + maxWidth) {
      cx = x
      cy += rowHeight
    }
    if (item.kind === "line") {
      const dash = item.dash !== undefined ? ` stroke-dasharray="${item.dash}"` : ""
      parts.push(`<line x1="${r(cx)}" y1="${r(cy)}" x2="${r(cx + 24)}" y2="${r(cy)}" stroke="${item.color}" stroke-width="2.2"${dash}/>`)
      if (item.marker !== undefined) parts.push(marker(item.marker, cx + 12, cy, item.color, 3.5))
    } else if (item.kind === "box") {
      parts.push(`<rect x="${r(cx + 6)}" y="${r(cy - 6)}" width="12" height="12" fill="${item.color}"/>`)
    } else {
      parts.push(`<rect x="${r(cx)}" y="${r(cy - 7)}" width="24" height="14" fill="${item.color}" stroke="#bbb"/>`)
    }
    parts.push(`<text x="${r(cx + 30)}" y="${r(cy + 4)}" class="legend">${escapeHtml(item.label)}</text>`)
    cx += w
  }
  return { svg: parts.join(""), height: cy - y + 9 + 6 }
}

export interface Axis {
  readonly label: string
  /** Tick text; default `formatTick`. */
  readonly format?: (v: number, step: number) => string
  /** Larger values to the left (x) — e.g. "% of original parameters", falling as the model shrinks. */
  readonly reversed?: boolean
  readonly domain?: DomainOptions
}

export interface Point {
  readonly x: number
  readonly y: number
  /** Tooltip (SVG <title>) of the point's marker. */
  readonly title?: string
}

export interface LineSeries {
  readonly label: string
  readonly color: string
  readonly points: ReadonlyArray<Point>
  readonly marker?: MarkerShape | undefined
  readonly dash?: string | undefined
  readonly width?: number
  readonly opacity?: number
  /** Leave out of the legend (e.g. the faint raw line under a smoothed one). */
  readonly hideInLegend?: boolean
}

export interface VerticalRule {
  readonly x: number
  readonly label?: string
}

export interface Band {
  readonly from: number
  readonly to: number
  readonly title?: string
}

export interface LineChart {
  readonly ariaLabel: string
  readonly x: Axis
  readonly y: Axis
  readonly series: ReadonlyArray<LineSeries>
  readonly rules?: ReadonlyArray<VerticalRule>
  /** Shaded x ranges, e.g. tuning that was rolled back. */
  readonly bands?: ReadonlyArray<Band>
  readonly bandLegend?: string
  /** x positions of values that are not finite (NaN/∞), drawn as crosses above the plot area instead of dropped silently. */
  readonly nonFinite?: ReadonlyArray<{ readonly x: number; readonly title: string }>
  readonly nonFiniteLegend?: string
  readonly emptyText: string
  readonly width?: number
  readonly height?: number
}

const frame = (width: number, height: number, aria: string, body: string): string =>
  `<svg class="plot" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(aria)}">` +
  `<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>${body}</svg>`

interface Plot {
  readonly left: number
  readonly right: number
  readonly top: number
  readonly bottom: number
}

const axes = (
  plot: Plot,
  x: { axis: Axis; domain: Domain; scale: (v: number) => number } | undefined,
  y: { axis: Axis; domain: Domain; scale: (v: number) => number },
  height: number
): string => {
  const parts: Array<string> = []
  const fy = y.axis.format ?? formatTick
  for (const t of y.domain.ticks) {
    const py = y.scale(t)
    parts.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${r(py)}" y2="${r(py)}" class="grid"/>`)
    parts.push(`<text x="${plot.left - 6}" y="${r(py + 4)}" class="tick" text-anchor="end">${escapeHtml(fy(t, y.domain.step))}</text>`)
  }
  if (x !== undefined) {
    const fx = x.axis.format ?? formatTick
    for (const t of x.domain.ticks) {
      const px = x.scale(t)
      parts.push(`<line x1="${r(px)}" x2="${r(px)}" y1="${plot.bottom}" y2="${plot.bottom + 5}" class="axis"/>`)
      parts.push(`<text x="${r(px)}" y="${plot.bottom + 18}" class="tick" text-anchor="middle">${escapeHtml(fx(t, x.domain.step))}</text>`)
    }
    parts.push(
      `<text x="${r((plot.left + plot.right) / 2)}" y="${height - 8}" class="label" text-anchor="middle">${escapeHtml(x.axis.label)}</text>`
    )
  }
  parts.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" class="axis"/>`)
  parts.push(`<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" class="axis"/>`)
  const cy = (plot.top + plot.bottom) / 2
  parts.push(
    `<text x="14" y="${r(cy)}" class="label" text-anchor="middle" transform="rotate(-90 14 ${r(cy)})">${escapeHtml(y.axis.label)}</text>`
  )
  return parts.join("")
}

/** Bare axes and a sentence: ticks over no data would suggest a scale that means nothing. */
const emptyMessage = (plot: Plot, text: string): string =>
  `<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" class="axis"/>` +
  `<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" class="axis"/>` +
  `<text x="${r((plot.left + plot.right) / 2)}" y="${r((plot.top + plot.bottom) / 2)}" class="empty" text-anchor="middle">${escapeHtml(text)}</text>`

/** A line chart; a series' line breaks wherever x or y is not finite. */
export const lineChart = (spec: LineChart): string => {
  const width = spec.width ?? 620
  const height = spec.height ?? 340
  const items: Array<LegendItem> = spec.series.filter((s) => !s.hideInLegend).map((s) => ({
    label: s.label,
    color: s.color,
    kind: "line" as const,
    marker: s.marker,
    dash: s.dash
  }))
  if (spec.bands !== undefined && spec.bands.length > 0 && spec.bandLegend !== undefined) {
    items.push({ label: spec.bandLegend, color: "#ececec", kind: "band" })
  }
  const nonFinite = (spec.nonFinite ?? []).filter((p) => finite(p.x))
  if (nonFinite.length > 0) items.push({ label: spec.nonFiniteLegend ?? "not finite (NaN/∞)", color: "#D55E00", kind: "line", marker: "cross" })
  const leg = legend(items, 56, 8, width - 70)
  // Non-finite values get a strip of their own above the plot area, clear of the data.
  const plot: Plot = { left: 62, right: width - 16, top: 14 + leg.height + (nonFinite.length > 0 ? 16 : 6), bottom: height - 44 }
  const points = spec.series.flatMap((s) => s.points)
  const finitePoints = points.filter((p) => finite(p.x) && finite(p.y))
  const xValues = [...points.map((p) => p.x), ...(spec.rules ?? []).map((v) => v.x), ...nonFinite.map((p) => p.x)]
  const xDomain = niceDomain(finitePoints.length > 0 ? xValues : [], spec.x.domain)
  const yDomain = niceDomain(finitePoints.map((p) => p.y), spec.y.domain)
  const sx = spec.x.reversed ? linear(xDomain, plot.right, plot.left) : linear(xDomain, plot.left, plot.right)
  const sy = linear(yDomain, plot.bottom, plot.top)
  const parts: Array<string> = [leg.svg]
  if (finitePoints.length === 0) {
    parts.push(emptyMessage(plot, spec.emptyText))
    return frame(width, height, spec.ariaLabel, parts.join(""))
  }
  const inX = (v: number) => finite(v) && v >= xDomain.lo - 1e-9 && v <= xDomain.hi + 1e-9
  for (const band of spec.bands ?? []) {
    if (!inX(band.from) || !inX(band.to)) continue
    const a = sx(band.from)
    const b = sx(band.to)
    const t = band.title !== undefined ? `<title>${escapeHtml(band.title)}</title>` : ""
    parts.push(
      `<rect x="${r(Math.min(a, b))}" y="${plot.top}" width="${r(Math.max(1, Math.abs(b - a)))}" height="${plot.bottom - plot.top}" fill="#ececec">${t}</rect>`
    )
  }
  parts.push(axes(plot, { axis: spec.x, domain: xDomain, scale: sx }, { axis: spec.y, domain: yDomain, scale: sy }, height))
  let lastLabel = -Infinity
  for (const rule of spec.rules ?? []) {
    if (!inX(rule.x)) continue
    const px = sx(rule.x)
    parts.push(`<line x1="${r(px)}" x2="${r(px)}" y1="${plot.top}" y2="${plot.bottom}" class="rule"/>`)
    if (rule.label !== undefined && Math.abs(px - lastLabel) >= textWidth(rule.label, 10) + 6) {
      parts.push(`<text x="${r(px + 3)}" y="${plot.top + 10}" class="rule-label">${escapeHtml(rule.label)}</text>`)
      lastLabel = px
    }
  }
  for (const s of spec.series) {
    const segments: Array<Array<Point>> = [[]]
    for (const p of s.points) {
      if (finite(p.x) && finite(p.y)) segments[segments.length - 1].push(p)
      else if (segments[segments.length - 1].length > 0) segments.push([])
    }
    const d = segments.filter((seg) => seg.length > 1)
      .map((seg) => seg.map((p, i) => `${i === 0 ? "M" : "L"}${r(sx(p.x))} ${r(sy(p.y))}`).join(""))
      .join("")
    const dash = s.dash !== undefined ? ` stroke-dasharray="${s.dash}"` : ""
    const opacity = s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ""
    if (d !== "") {
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}" stroke-linejoin="round"${dash}${opacity}/>`
      )
    }
    for (const p of segments.filter((seg) => seg.length === 1 || s.marker !== undefined).flat()) {
      parts.push(marker(s.marker ?? "circle", sx(p.x), sy(p.y), s.color, s.marker !== undefined ? 4 : 2, p.title))
    }
  }
  for (const p of nonFinite) {
    if (inX(p.x)) parts.push(marker("cross", sx(p.x), plot.top - 8, "#D55E00", 3.5, p.title))
  }
  return frame(width, height, spec.ariaLabel, parts.join(""))
}

export interface BarSegment {
  readonly key: string
  readonly color: string
}

export interface Bar {
  readonly label: string
  /** Value per segment key; missing, non-finite or negative values draw nothing. */
  readonly values: Readonly<Record<string, number>>
  /** Drawn faded (e.g. an attempt that was rolled back). */
  readonly faded?: boolean
  readonly title?: string
}

export interface BarChart {
  readonly ariaLabel: string
  readonly x: Axis
  readonly y: Axis
  readonly segments: ReadonlyArray<BarSegment>
  readonly bars: ReadonlyArray<Bar>
  readonly fadedLegend?: string
  readonly emptyText: string
  readonly width?: number
  readonly height?: number
}

const barValue = (v: number | undefined): number => v !== undefined && finite(v) && v > 0 ? v : 0

/** Stacked bars, one per category, segments in the order given. */
export const stackedBarChart = (spec: BarChart): string => {
  const width = spec.width ?? 620
  const height = spec.height ?? 320
  const items: Array<LegendItem> = spec.segments.map((s) => ({ label: s.key, color: s.color, kind: "box" as const }))
  if (spec.fadedLegend !== undefined && spec.bars.some((b) => b.faded)) items.push({ label: spec.fadedLegend, color: "#bbbbbb", kind: "box" })
  const leg = legend(items, 56, 8, width - 70)
  const plot: Plot = { left: 62, right: width - 16, top: 14 + leg.height + 10, bottom: height - 44 }
  const totals = spec.bars.map((b) => spec.segments.reduce((sum, s) => sum + barValue(b.values[s.key]), 0))
  const yDomain = niceDomain(totals, { include: 0, ...spec.y.domain, clamp: [0, Infinity] })
  const sy = linear(yDomain, plot.bottom, plot.top)
  const parts: Array<string> = [leg.svg]
  if (spec.bars.length === 0 || totals.every((t) => t === 0)) {
    parts.push(emptyMessage(plot, spec.emptyText))
    return frame(width, height, spec.ariaLabel, parts.join(""))
  }
  parts.push(axes(plot, undefined, { axis: spec.y, domain: yDomain, scale: sy }, height))
  const band = (plot.right - plot.left) / spec.bars.length
  const barWidth = Math.max(1, Math.min(48, band * 0.72))
  const fy = spec.y.format ?? formatTick
  const labelEvery = Math.max(1, Math.ceil(Math.max(...spec.bars.map((b) => textWidth(b.label, 11))) / band + 0.3))
  spec.bars.forEach((bar, i) => {
    const cx = plot.left + band * (i + 0.5)
    let base = 0
    for (const segment of spec.segments) {
      const v = barValue(bar.values[segment.key])
      if (v === 0) continue
      const y0 = sy(base)
      const y1 = sy(base + v)
      base += v
      const title = `${bar.title ?? bar.label} — ${segment.key}: ${fy(v, yDomain.step / 10)} s`
      parts.push(
        `<rect x="${r(cx - barWidth / 2)}" y="${r(y1)}" width="${r(barWidth)}" height="${r(Math.max(0.5, y0 - y1))}" ` +
          `fill="${segment.color}"${bar.faded ? " fill-opacity=\"0.35\"" : ""}><title>${escapeHtml(title)}</title></rect>`
      )
    }
    if (band >= 26 && totals[i] > 0) {
      parts.push(`<text x="${r(cx)}" y="${r(sy(totals[i]) - 4)}" class="bar-total" text-anchor="middle">${escapeHtml(fy(totals[i], yDomain.step / 10))}</text>`)
    }
    if (i % labelEvery === 0) {
      parts.push(`<line x1="${r(cx)}" x2="${r(cx)}" y1="${plot.bottom}" y2="${plot.bottom + 4}" class="axis"/>`)
      parts.push(`<text x="${r(cx)}" y="${plot.bottom + 17}" class="tick" text-anchor="middle">${escapeHtml(bar.label)}</text>`)
    }
  })
  parts.push(`<text x="${r((plot.left + plot.right) / 2)}" y="${height - 8}" class="label" text-anchor="middle">${escapeHtml(spec.x.label)}</text>`)
  return frame(width, height, spec.ariaLabel, parts.join(""))
}
