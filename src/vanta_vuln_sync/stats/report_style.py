"""The report's stylesheet: screen layout for a laptop, a print layout for A4, no web fonts."""

from __future__ import annotations

CSS = """
:root{--ink:#1f2328;--mute:#667085;--line:#e6e8eb;--bg:#f5f6f8;--card:#fff;--crit:#c92a2a}
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.page{max-width:1180px;margin:0 auto;padding:28px 28px 40px}
.top{display:flex;justify-content:space-between;align-items:flex-end;gap:24px;flex-wrap:wrap;
 border-bottom:3px solid var(--ink);padding-bottom:14px;margin-bottom:18px}
.eyebrow{margin:0;text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--mute);font-weight:600}
h1{margin:4px 0 0;font-size:28px;line-height:1.15;letter-spacing:-.01em}
.meta{display:flex;gap:22px;margin:0;flex-wrap:wrap}
.meta dt{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--mute)}
.meta dd{margin:2px 0 0;font-weight:600;max-width:260px;overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-bottom:16px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;
 border-top:4px solid #adb5bd}
.tile.bad{border-top-color:#c92a2a}.tile.warn{border-top-color:#f76707}.tile.crit{border-top-color:#862e9c}
.tile.good{border-top-color:#37b24d}
.tile .k{margin:0;font-size:12px;color:var(--mute);font-weight:600}
.tile .v{margin:4px 0 2px;font-size:30px;font-weight:700;letter-spacing:-.02em;
 font-variant-numeric:tabular-nums}
.tile .s{margin:0;font-size:12px;color:var(--mute)}
.grid.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
 margin-bottom:16px;break-inside:avoid}
.grid .card{margin-bottom:0}.grid{margin-bottom:16px}
h2{margin:0 0 10px;font-size:15px;letter-spacing:.01em}
.note{color:var(--mute);font-size:12.5px;margin-top:8px}.note p{margin:6px 0 0}
svg{display:block;max-width:100%;height:auto}
svg .lbl{font-size:13px;fill:var(--ink);font-weight:600}
svg .val{font-size:13px;fill:var(--ink);font-weight:700}
svg .inbar{font-size:11px;fill:#fff;font-weight:700}svg .inbar.dark{fill:#343a40}
svg .axis,svg .note{font-size:11px;fill:var(--mute)}
svg .track{fill:#f1f3f5}
svg .grid{stroke:#e9ecef;stroke-width:1}
svg .target{stroke:var(--ink);stroke-width:2;stroke-dasharray:3 2}
svg .mean{fill:#fff;stroke:var(--ink);stroke-width:2}
svg .new{fill:#e03131}svg .gone{fill:#2f9e44}
.split{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.6fr);gap:24px;align-items:start}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin-top:6px}
.key{display:inline-flex;align-items:center;gap:6px;font-size:12px;color:var(--ink)}
.key i{width:12px;height:12px;border-radius:3px;display:inline-block}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--mute);text-align:left;
 border-bottom:1px solid var(--line);padding:6px 8px}
td{padding:7px 8px;border-bottom:1px solid #f1f3f5;vertical-align:middle}
tbody tr:last-child td{border-bottom:0}
.compact td,.compact th{padding:4px 8px}.compact{margin-top:8px}.narrow{max-width:360px}
.num{text-align:right;white-space:nowrap}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.wrap{overflow-wrap:anywhere;word-break:break-word}
.name{display:block;font-weight:600}.sub{display:block;color:var(--mute);font-size:11.5px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11.5px;font-weight:700;
 color:var(--c);background:var(--t);border:1px solid var(--c)}
.ibar{display:inline-block;height:9px;border-radius:2px;margin-right:8px;vertical-align:middle;opacity:.85}
.crit{color:var(--crit)}.up{color:#c92a2a;font-weight:600}.down{color:#2b8a3e;font-weight:600}
.stats3{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;margin-bottom:6px}
.stats3 .v{margin:0;font-size:24px;font-weight:700}.stats3 .k{margin:0;font-size:12px;color:var(--mute)}
.empty{color:var(--mute);font-style:italic}
footer{color:var(--mute);font-size:12px;border-top:1px solid var(--line);padding-top:12px;margin-top:8px}
@media (max-width:900px){.tiles{grid-template-columns:repeat(3,1fr)}.grid.two{grid-template-columns:1fr}
 .grid .card{margin-bottom:16px}}
@media print{
 @page{size:A4;margin:12mm}
 body{background:#fff;font-size:11px}.page{max-width:none;padding:0}
 .tiles{grid-template-columns:repeat(3,1fr)}
 .card,.tile{border-color:#ccc;box-shadow:none}.card{break-inside:avoid}
 .grid.two{grid-template-columns:1fr 1fr}
}
"""
