"""The page of ``report.html``: its skeleton, inline style and script, and the SVG charts at its top.

Nothing is fetched from anywhere: the script renders the pair cards from the JSON blob the page
carries, a page of cards at a time, and the charts are drawn here as SVG.
"""

from __future__ import annotations

import html
import math

COLOURS = {"pairs": "#4c72b0", "correct": "#2e8b57", "wrong": "#d1495b", "no reference": "#9a9a9a", "all": "#4c72b0"}


def histogram_svg(title: str, groups: dict[str, list[float]], bins: int = 20, width: int = 330,
                  height: int = 190) -> str:
    """A histogram over ``[0, 1]`` of one or several groups of values, stacked, as inline SVG.

    Values outside ``[0, 1]`` (a normalised curve can leave it) are counted in the edge bins and said so.
    """
    shown = [(name, values) for name, values in groups.items() if values]
    left, right, top, bottom = 34, 10, 38 if len(shown) > 1 else 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = {name: [0] * bins for name in groups}
    outside = 0
    for name, values in groups.items():
        for value in values:
            outside += not 0 <= value <= 1
            counts[name][min(bins - 1, max(0, math.floor(value * bins)))] += 1
    totals = [sum(counts[name][k] for name in groups) for k in range(bins)]
    peak = max(totals, default=0) or 1
    parts = [f"<text x='{left}' y='14' class='title'>{html.escape(title)}</text>"]
    bar_w = plot_w / bins
    for k in range(bins):
        y = top + plot_h
        for name in groups:
            count = counts[name][k]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            label = f"{name}: {count} in [{k / bins:.2f}, {(k + 1) / bins:.2f})"
            parts.append(f"<rect x='{left + k * bar_w + 0.5:.1f}' y='{y:.1f}' width='{bar_w - 1:.1f}' "
                         f"height='{h:.1f}' fill='{COLOURS.get(name, '#4c72b0')}'><title>{html.escape(label)}</title></rect>")
    base = top + plot_h
    parts.append(f"<line x1='{left}' y1='{base}' x2='{left + plot_w}' y2='{base}' class='axis'/>")
    parts.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{base}' class='axis'/>")
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = left + tick * plot_w
        parts.append(f"<text x='{x:.1f}' y='{base + 14}' class='tick' text-anchor='middle'>{tick:g}</text>")
    parts.append(f"<text x='{left - 4}' y='{top + 4}' class='tick' text-anchor='end'>{peak}</text>")
    parts.append(f"<text x='{left - 4}' y='{base}' class='tick' text-anchor='end'>0</text>")
    everything = sorted(v for values in groups.values() for v in values)
    if everything:
        middle = len(everything) // 2
        median = everything[middle] if len(everything) % 2 else (everything[middle - 1] + everything[middle]) / 2
        x = left + min(1.0, max(0.0, median)) * plot_w
        parts.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{base}' class='median'>"
                     f"<title>median {median:.3f}</title></line>")
    note = f"median dashed; {len(everything)} pairs" + (f"; {outside} outside [0, 1], in the end bins" if outside else "")
    parts.append(f"<text x='{left}' y='{height - 4}' class='note'>{html.escape(note)}</text>")
    x = left
    for name, values in shown if len(shown) > 1 else []:
        label = f"\u25a0 {name} ({len(values)})"
        parts.append(f"<text x='{x}' y='29' class='legend' fill='{COLOURS.get(name, '#4c72b0')}'>{html.escape(label)}</text>")
        x += 6.5 * len(label) + 12
    return (f"<svg viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
            f"aria-label='{html.escape(title)}'>{''.join(parts)}</svg>")


def share_bar_svg(title: str, bars: dict[str, list[bool]], width: int = 330) -> str:
    """One horizontal bar per group: the share of ``True`` (hits) among its values, as inline SVG."""
    row, left, top = 26, 80, 24
    height = top + row * len(bars) + 12
    parts = [f"<text x='{left}' y='14' class='title'>{html.escape(title)}</text>"]
    plot_w = width - left - 92
    for k, (name, values) in enumerate(bars.items()):
        y = top + k * row
        hits, total = sum(bool(v) for v in values), len(values)
        share = hits / total if total else 0.0
        parts.append(f"<text x='{left - 6}' y='{y + 14}' class='tick' text-anchor='end'>{html.escape(name)}</text>")
        parts.append(f"<rect x='{left}' y='{y + 3}' width='{plot_w}' height='16' fill='#e6e6e6'/>")
        parts.append(f"<rect x='{left}' y='{y + 3}' width='{plot_w * share:.1f}' height='16' "
                     f"fill='{COLOURS.get(name, '#4c72b0')}'><title>{hits} hit(s) of {total}</title></rect>")
        label = f"{share:.2f} ({hits}/{total})" if total else "n/a"
        parts.append(f"<text x='{left + plot_w + 6}' y='{y + 15}' class='tick'>{label}</text>")
    return (f"<svg viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
            f"aria-label='{html.escape(title)}'>{''.join(parts)}</svg>")


STYLE = """
:root { --fg: #1d1d1f; --muted: #6b6b70; --line: #d9d9de; --card: #fff; --bg: #f4f4f6; --accent: #2f5fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header.top, section.overview, nav.filters, main, nav.pager { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
header.top { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.meta { color: var(--muted); margin: 0 0 8px; }
details.settings pre { background: #fff; border: 1px solid var(--line); padding: 8px; max-height: 320px;
                       overflow: auto; font-size: 12px; }
table.means { border-collapse: collapse; background: #fff; border: 1px solid var(--line); margin: 6px 0; }
table.means th, table.means td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
                                 font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px; }
svg .title { font: 600 12px system-ui, sans-serif; } svg .tick, svg .legend { font: 11px system-ui, sans-serif; }
svg .note { font: 10px system-ui, sans-serif; fill: var(--muted); } svg .axis { stroke: #888; }
svg .median { stroke: #111; stroke-dasharray: 4 3; }
nav.filters { position: sticky; top: 0; z-index: 2; background: var(--bg); padding-top: 8px; padding-bottom: 8px;
              border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; }
.group { display: inline-flex; gap: 4px; align-items: center; }
.group > span.label { color: var(--muted); margin-right: 2px; }
button { font: inherit; border: 1px solid var(--line); background: #fff; border-radius: 14px; padding: 2px 10px;
         cursor: pointer; }
button[aria-pressed="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
button:disabled { opacity: 0.4; cursor: default; }
input[type="search"], select { font: inherit; padding: 2px 6px; border: 1px solid var(--line); border-radius: 4px; }
nav.pager { display: flex; gap: 8px; align-items: center; padding-top: 10px; padding-bottom: 10px; }
.shown { color: var(--muted); }
main { display: flex; flex-direction: column; gap: 12px; }
article.pair { background: var(--card); border: 1px solid var(--line); border-left: 5px solid #999; border-radius: 6px;
               padding: 10px 14px; }
article.pair.explained { border-left-color: #2e8b57; } article.pair.not_grounded { border-left-color: #c9a227; }
article.pair.failed { border-left-color: #d1495b; }
article.pair h2 { font-size: 15px; margin: 0 0 6px; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
article.pair h2 a { color: inherit; text-decoration: none; }
.badge { font-size: 11px; font-weight: 600; padding: 1px 7px; border-radius: 9px; background: #eee; color: #333; }
.badge.explained, .badge.hit, .badge.correct { background: #dcefe3; color: #1f5f3b; }
.badge.not_grounded, .badge.warn { background: #f6ecc9; color: #6b5410; }
.badge.failed, .badge.miss, .badge.wrong { background: #f7d9dd; color: #7a1f2b; }
.body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 14px; }
@media (max-width: 800px) { .body { grid-template-columns: 1fr; } }
.figs img { max-width: 100%; display: block; border: 1px solid var(--line); margin-bottom: 6px; }
.figs .curves { max-width: 100%; width: 420px; margin-top: 8px; }
p { margin: 4px 0; }
.q b, .a b { color: var(--muted); margin-right: 4px; }
.strip { font-family: ui-monospace, "DejaVu Sans Mono", monospace; line-height: 1.9; }
.tok { padding: 1px 3px; border-radius: 3px; color: #111; }
.tok.dark { color: #fff; } .tok.sel { font-weight: 700; outline: 2px solid #111; outline-offset: -1px; }
.reason { color: #7a1f2b; } .note { color: var(--muted); }
table.numbers { border-collapse: collapse; margin-top: 6px; font-variant-numeric: tabular-nums; }
table.numbers th { text-align: left; font-weight: normal; color: var(--muted); padding: 1px 12px 1px 0; }
table.numbers td { padding: 1px 0; }
details.words { margin-top: 8px; } details.words img { max-width: 100%; }
table.wordtable { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
table.wordtable th, table.wordtable td { padding: 2px 8px; border-bottom: 1px solid var(--line); text-align: left; }
.wordfigs { display: flex; flex-wrap: wrap; gap: 6px; } .wordfigs figure { margin: 0; width: 260px; }
.wordfigs figcaption { font-size: 12px; color: var(--muted); }
.empty { color: var(--muted); padding: 20px; text-align: center; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("pairs-data").textContent);
  const PAIRS = DATA.pairs;
  const state = { status: "all", pointing: "all", answer: "all", query: "", sort: "order", page: 0 };
  const LABEL = { explained: "explained", not_grounded: "not grounded", failed: "failed" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const num = (v, d = 3) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));

  const TESTS = {
    status: (p, v) => p.status === v,
    pointing: (p, v) => p.pointing_hit === (v === "hit"),
    answer: (p, v) => p.correct === (v === "correct"),
  };
  function passes(p, skip) {
    for (const group of Object.keys(TESTS)) {
      if (group !== skip && state[group] !== "all" && !TESTS[group](p, state[group])) return false;
    }
    if (state.query) {
      const text = [p.id, p.question, p.answer, p.reference].join(" ").toLowerCase();
      if (!text.includes(state.query)) return false;
    }
    return true;
  }
  const SORTS = {
    order: null,
    deletion_asc: ["deletion_auc", 1], deletion_desc: ["deletion_auc", -1],
    insertion_desc: ["insertion_auc", -1], insertion_asc: ["insertion_auc", 1],
    mass_desc: ["box_mass", -1], seconds_desc: ["seconds", -1],
  };
  function ordered(list) {
    const sort = SORTS[state.sort];
    if (!sort) return list;
    const [key, sign] = sort;
    return list.slice().sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === null && y === null) return a.index - b.index;
      if (x === null) return 1;
      if (y === null) return -1;
      return sign * (x - y) || a.index - b.index;
    });
  }

  function strip(tokens) {
    const span = el("span", { class: "strip" });
    if (!tokens.length) span.append(el("span", { class: "note", text: "(no answer tokens)" }));
    tokens.forEach(([text, colour, dark, selected, space, llr], k) => {
      if (space && k) span.append(" ");
      const title = "LLR " + (llr === null ? "n/a" : (llr >= 0 ? "+" : "") + llr.toFixed(2)) +
        (selected ? ", explained" : "");
      span.append(el("span", { class: "tok" + (dark ? " dark" : "") + (selected ? " sel" : ""),
        style: "background:" + colour, title: title, text: text }));
    });
    return span;
  }
  function figure(src, alt, cls) {
    if (!src) return null;
    return el("a", { href: src, target: "_blank" }, el("img", { src: src, alt: alt, loading: "lazy", class: cls }));
  }
  function row(label, value) { return el("tr", {}, el("th", { text: label }), el("td", { text: value })); }

  function card(p) {
    const head = el("h2", {}, el("a", { href: "#pair-" + p.folder, text: p.id }),
      el("span", { class: "badge " + p.status, text: LABEL[p.status] || p.status }));
    if (p.pointing_hit !== null && p.pointing_hit !== undefined)
      head.append(el("span", { class: "badge " + (p.pointing_hit ? "hit" : "miss"), text: p.pointing_hit ? "hit" : "miss" }));
    if (p.correct !== null && p.correct !== undefined)
      head.append(el("span", { class: "badge " + (p.correct ? "correct" : "wrong"), text: p.correct ? "correct" : "wrong" }));
    if (p.unstable) head.append(el("span", { class: "badge warn", text: "unstable normalisation" }));
    if (p.out_of_range) head.append(el("span", { class: "badge warn", text: "curve leaves [0, 1]" }));
    if (p.reliance && p.reliance.answered_without_image)
      head.append(el("span", { class: "badge warn", text: "answered without the image" }));

    const text = el("div", { class: "text" });
    text.append(el("p", { class: "q" }, el("b", { text: "Q" }), p.question || ""));
    if (p.status !== "failed" || p.tokens.length) text.append(el("p", { class: "a" }, el("b", { text: "A" }), strip(p.tokens)));
    if (p.reference !== null && p.reference !== undefined)
      text.append(el("p", { class: "note", text: "reference: " + p.reference + " (match: " + (p.answer_match || "none") + ")" }));
    if (p.status === "failed") text.append(el("p", { class: "reason", text: "failed: " + (p.reason || "no reason recorded") }));
    if (p.status === "not_grounded")
      text.append(el("p", { class: "note", text: "not visually grounded: no answer token depends on the image or a region of it; no heatmap" }));
    const numbers = el("table", { class: "numbers" });
    if (p.status === "explained") {
      numbers.append(row("deletion AUC", num(p.deletion_auc)), row("insertion AUC", num(p.insertion_auc)),
        row("p(I) / p(B)", num(p.p_image) + " / " + num(p.p_baseline)));
    }
    if (p.bbox) {
      numbers.append(row("box", "[" + p.bbox.map((v) => Math.round(v)).join(", ") + "]"));
      if (p.pointing_hit !== null && p.pointing_hit !== undefined)
        numbers.append(row("pointing game", p.pointing_hit ? "hit (peak in the box)" : "miss (peak outside the box)"));
      if (p.box_mass !== null) numbers.append(row("box mass", num(p.box_mass)));
    }
    if (p.reliance) {
      const r = p.reliance;
      numbers.append(row("log p(A | image / baseline)", num(r.log_p_image, 2) + " / " + num(r.log_p_baseline, 2)));
      if (r.log_p_no_image !== null && r.log_p_no_image !== undefined)
        numbers.append(row("log p(A | no image)", num(r.log_p_no_image, 2) + " (ratio " + num(r.no_image_ratio, 2) + ")"));
    }
    if (p.seconds !== null) numbers.append(row("time", num(p.seconds, 1) + " s"));
    if (p.image_notes.length) numbers.append(row("image", p.image_notes.join("; ")));
    text.append(numbers);

    const curves = figure(p.images.curves, "deletion and insertion curves of " + p.id, "curves");
    if (curves) text.append(el("div", { class: "figs" }, curves));
    const figs = el("div", { class: "figs" }, figure(p.images.overlay, "overlay of " + p.id));
    const body = el("div", { class: "body" }, figs, text);
    const article = el("article", { class: "pair " + p.status, id: "pair-" + p.folder }, head, body);
    if (p.words && p.words.length) article.append(words(p));
    return article;
  }
  function words(p) {
    const box = el("details", { class: "words" }, el("summary", { text: "per-word maps (" + p.words.length + " words)" }));
    const table = el("table", { class: "wordtable" }, el("tr", {}, ...["word", "tokens", "deletion AUC", "insertion AUC",
      "pointing", "box mass"].map((h) => el("th", { text: h }))));
    const figs = el("div", { class: "wordfigs" });
    for (const w of p.words) {
      const hit = w.pointing_hit === null || w.pointing_hit === undefined ? "n/a" : (w.pointing_hit ? "hit" : "miss");
      table.append(el("tr", {}, ...[w.word, (w.tokens || []).join(" "), num(w.deletion_auc), num(w.insertion_auc), hit,
        num(w.box_mass)].map((v) => el("td", { text: String(v) }))));
      if (w.overlay) figs.append(el("figure", {}, figure(w.overlay, "map of " + w.word), el("figcaption", { text: w.word })));
    }
    box.append(table, figure(p.images.words, "per-word maps of " + p.id), figs);
    return box;
  }

  const main = document.getElementById("pairs");
  const shown = Array.from(document.querySelectorAll(".shown"));
  function render() {
    const matching = ordered(PAIRS.filter((p) => passes(p)));
    const pages = Math.max(1, Math.ceil(matching.length / DATA.page_size));
    state.page = Math.min(state.page, pages - 1);
    const first = state.page * DATA.page_size;
    const slice = matching.slice(first, first + DATA.page_size);
    main.replaceChildren(...slice.map(card));
    if (!slice.length) main.append(el("p", { class: "empty", text: "No pair matches these filters." }));
    const range = matching.length ? (first + 1) + "\u2013" + (first + slice.length) : "0";
    for (const s of shown)
      s.textContent = "pairs " + range + " of " + matching.length + " shown (" + PAIRS.length + " in the run); page " +
        (state.page + 1) + " of " + pages;
    document.querySelectorAll("button.prev").forEach((b) => { b.disabled = state.page === 0; });
    document.querySelectorAll("button.next").forEach((b) => { b.disabled = state.page >= pages - 1; });
    document.querySelectorAll("button.filter").forEach((b) => {
      const group = b.dataset.group, value = b.dataset.value;
      b.setAttribute("aria-pressed", String(state[group] === value));
      const count = PAIRS.filter((p) => passes(p, group) && (value === "all" || TESTS[group](p, value))).length;
      b.querySelector(".n").textContent = count;
    });
  }

  if (!DATA.boxes) document.getElementById("group-pointing").remove();
  if (!DATA.references) document.getElementById("group-answer").remove();
  document.querySelectorAll("button.filter").forEach((b) => b.addEventListener("click", () => {
    state[b.dataset.group] = b.dataset.value; state.page = 0; render();
  }));
  document.getElementById("search").addEventListener("input", (e) => {
    state.query = e.target.value.trim().toLowerCase(); state.page = 0; render();
  });
  document.getElementById("sort").addEventListener("change", (e) => { state.sort = e.target.value; state.page = 0; render(); });
  document.querySelectorAll("button.prev").forEach((b) => b.addEventListener("click", () => {
    state.page -= 1; render(); window.scrollTo(0, document.getElementById("filters").offsetTop);
  }));
  document.querySelectorAll("button.next").forEach((b) => b.addEventListener("click", () => {
    state.page += 1; render(); window.scrollTo(0, document.getElementById("filters").offsetTop);
  }));
  render();
})();
"""


def _buttons(group: str, label: str, values: list[tuple[str, str]]) -> str:
    buttons = "".join(f"<button class='filter' data-group='{group}' data-value='{value}'>{text} "
                      f"(<span class='n'></span>)</button>" for value, text in values)
    return f"<div class='group' id='group-{group}'><span class='label'>{label}</span>{buttons}</div>"


def page(*, title: str, heading: str, model: str, written: str, settings: str, overview: str, data: str) -> str:
    """The whole page; every argument but ``data`` (the JSON blob, ``<`` escaped) is HTML already."""
    filters = (
        _buttons("status", "status", [("all", "all"), ("explained", "explained"), ("not_grounded", "not grounded"),
                                      ("failed", "failed")])
        + _buttons("pointing", "pointing game", [("all", "all"), ("hit", "hits"), ("miss", "misses")])
        + _buttons("answer", "answer", [("all", "all"), ("correct", "correct"), ("wrong", "wrong")])
        + "<div class='group'><input type='search' id='search' placeholder='search id, question, answer'></div>"
        + "<div class='group'><span class='label'>sort</span><select id='sort'>"
        + "<option value='order'>dataset order</option><option value='deletion_asc'>deletion AUC, lowest first</option>"
        + "<option value='deletion_desc'>deletion AUC, highest first</option>"
        + "<option value='insertion_desc'>insertion AUC, highest first</option>"
        + "<option value='insertion_asc'>insertion AUC, lowest first</option>"
        + "<option value='mass_desc'>box mass, highest first</option>"
        + "<option value='seconds_desc'>time, longest first</option></select></div>"
    )
    pager = ("<nav class='pager'><button class='prev'>previous</button><button class='next'>next</button>"
             "<span class='shown'></span></nav>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><link rel='icon' href='data:,'><style>{STYLE}</style></head><body>"
        f"<header class='top'><h1>lvlm_heat report: {heading}</h1>"
        f"<p class='meta'>model {model}; written {written}. Overlays: red = important; the answer strip colours each "
        "token by its LLR (red: the image makes it more likely), explained tokens boxed.</p>"
        f"<details class='settings'><summary>settings (run.json)</summary><pre>{settings}</pre></details></header>"
        f"<section class='overview'>{overview}</section>"
        f"<nav class='filters' id='filters'>{filters}</nav>{pager}<main id='pairs'></main>{pager}"
        f"<script type='application/json' id='pairs-data'>{data}</script><script>{SCRIPT}</script></body></html>\n"
    )
