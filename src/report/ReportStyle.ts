/** report.html's stylesheet, inlined in the page (the page loads nothing external). */
export const css = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1b;
  background: #fafafa; margin: 0; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 14px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
.note, .caption { color: #555; font-size: 12.5px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; vertical-align: top; }
thead th { background: #f0f0f0; text-align: left; font-weight: 600; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.message { min-width: 18em; max-width: 32em; color: #444; }
td.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; min-width: 16em; }
p.warning { background: #fff4c7; border: 1px solid #e6d48a; padding: 6px 10px; margin: 8px 0; }
tbody th { text-align: left; white-space: nowrap; font-weight: 600; }
tr.rolled-back td { background: #f6f6f6; color: #666; }
.pct, .delta { color: #666; white-space: nowrap; }
table.summary td.num { white-space: normal; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; white-space: nowrap; }
.badge.original { background: #e8e8e8; }
.badge.accepted { background: #d8ecf7; color: #004a75; }
.badge.rolled-back { background: #fbe3d6; color: #8a3500; }
.badge.interrupted { background: #f3e0ec; color: #6d2a55; }
.badge.failed { background: #fde8e8; color: #a11; }
.badge.in-progress { background: #fff4c7; color: #5c4b00; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { box-sizing: border-box; margin: 0; background: #fff; border: 1px solid #ddd; padding: 8px; flex: 0 1 540px; min-width: 320px; }
figcaption { margin: 0 0 4px; font-size: 13px; }
svg.plot { display: block; width: 100%; height: auto; }
svg text { font-family: inherit; fill: #222; }
svg .tick { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; }
svg .legend { font-size: 12px; }
svg .empty { font-size: 13px; fill: #777; }
svg .bar-total { font-size: 10px; fill: #444; }
svg .rule-label { font-size: 10px; fill: #666; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .rule { stroke: #999; stroke-width: 1; stroke-dasharray: 3 3; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 12.5px; }
`
