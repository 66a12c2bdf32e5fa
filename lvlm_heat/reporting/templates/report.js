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

  function strip(markup) {  // the answer strip, rendered (and escaped) by the same template as the notebook's
    const holder = document.createElement("template");
    holder.innerHTML = markup;
    return holder.content;
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
    if (p.unstable) head.append(el("span", { class: "badge warn", text: DATA.unstable_mark }));
    if (p.out_of_range) head.append(el("span", { class: "badge warn", text: "curve leaves [0, 1]" }));
    if (p.reliance && p.reliance.answered_without_image)
      head.append(el("span", { class: "badge warn", text: "answered without the image" }));

    const text = el("div", { class: "text" });
    text.append(el("p", { class: "q" }, el("b", { text: "Q" }), p.question || ""));
    if (p.status !== "failed" || p.tokens.length) text.append(el("p", { class: "a" }, el("b", { text: "A" }), strip(p.strip)));
    if (p.reference !== null && p.reference !== undefined)
      text.append(el("p", { class: "note", text: "reference: " + p.reference + " (match: " + (p.answer_match || "none") + ")" }));
    if (p.status === "failed") text.append(el("p", { class: "reason", text: "failed: " + (p.reason || "no reason recorded") }));
    if (p.status === "not_grounded")
      text.append(el("p", { class: "note", text: "not visually grounded: no answer token depends on the image or a region of it; no heatmap" }));
    const several = p.methods.length > 1;  // each explainer's scores go under its own map
    const numbers = el("table", { class: "numbers" });
    if (p.status === "explained") {
      if (!several)
        numbers.append(row("deletion AUC", num(p.deletion_auc)), row("insertion AUC", num(p.insertion_auc)));
      numbers.append(row("p(I) / p(B)", num(p.p_image) + " / " + num(p.p_baseline)));
    }
    if (p.bbox) {
      numbers.append(row("box", "[" + p.bbox.map((v) => Math.round(v)).join(", ") + "]"));
      if (!several && p.pointing_hit !== null && p.pointing_hit !== undefined)
        numbers.append(row("pointing game", p.pointing_hit ? "hit (peak in the box)" : "miss (peak outside the box)"));
      if (!several && p.box_mass !== null) numbers.append(row("box mass", num(p.box_mass)));
    }
    if (p.reliance) {
      const r = p.reliance;
      numbers.append(row("log p(A | image / baseline)", num(r.log_p_image, 2) + " / " + num(r.log_p_baseline, 2)));
      if (r.log_p_no_image !== null && r.log_p_no_image !== undefined)
        numbers.append(row("log p(A | no image)", num(r.log_p_no_image, 2) + " (ratio " + num(r.no_image_ratio, 2) + ")"));
    }
    if (p.shares.length)
      numbers.append(row("share of the map", p.shares.map(([name, share]) => name + ": " + num(share)).join(", ")));
    if (p.seconds !== null) numbers.append(row("time", num(p.seconds, 1) + " s"));
    if (p.image_notes.length) numbers.append(row("image", p.image_notes.join("; ")));
    text.append(numbers);

    const article = el("article", { class: "pair " + p.status, id: "pair-" + p.folder }, head);
    if (several) {
      article.append(methods(p), el("div", { class: "body wide" }, text));
    } else {
      const curves = figure(p.images.curves, "deletion and insertion curves of " + p.id, "curves");
      if (curves) text.append(el("div", { class: "figs" }, curves));
      const figs = el("div", { class: "figs" }, figure(p.images.overlay, "overlay of " + p.id));
      const clip = figure(p.images.frames, "the map over the clip's frames, " + p.id);
      if (clip) figs.append(clip);
      article.append(el("div", { class: "body" }, figs, text));
    }
    if (p.words && p.words.length) article.append(words(p));
    return article;
  }
  function methods(p) {  // every explainer's overlay side by side: the same figure code, colour scale and strip
    const box = el("div", { class: "methods" });
    for (const m of p.methods) {
      const numbers = el("table", { class: "numbers" }, row("deletion AUC", num(m.deletion_auc)),
        row("insertion AUC", num(m.insertion_auc)));
      if (m.pointing_hit !== null && m.pointing_hit !== undefined)
        numbers.append(row("pointing game", m.pointing_hit ? "hit" : "miss"));
      if (m.box_mass !== null) numbers.append(row("box mass", num(m.box_mass)));
      numbers.append(row("passes", m.passes === null ? "n/a" : String(m.passes)),
        row("time", num(m.seconds, 2) + " s"));
      if (m.out_of_range) numbers.append(row("note", "curve leaves [0, 1]"));
      const caption = el("figcaption", {}, el("b", { text: m.title }), numbers);
      if (m.curves)
        caption.append(el("a", { href: m.curves, target: "_blank", text: "deletion and insertion curves" }));
      box.append(el("figure", { class: "method", "data-method": m.method },
        figure(m.overlay, m.title + " map of " + p.id), caption));
    }
    return box;
  }
  function words(p) {
    const box = el("details", { class: "words" }, el("summary", { text: "per-word maps (" + p.words.length + " words)" }));
    const table = el("table", { class: "wordtable" }, el("tr", {}, ...["word", "tokens", "deletion AUC", "insertion AUC",
      "pointing", "box mass", "note"].map((h) => el("th", { text: h }))));
    const figs = el("div", { class: "wordfigs" });
    for (const w of p.words) {
      const hit = w.pointing_hit === null || w.pointing_hit === undefined ? "n/a" : (w.pointing_hit ? "hit" : "miss");
      table.append(el("tr", {}, ...[w.word, (w.tokens || []).length, num(w.deletion_auc), num(w.insertion_auc), hit,
        num(w.box_mass), w.unstable ? DATA.unstable_mark : ""].map((v) => el("td", { text: String(v) }))));
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
