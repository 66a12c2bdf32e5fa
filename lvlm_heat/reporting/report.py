"""``report.html``: one page to look at a run, one pair or thousands.

The page is self-contained and works offline: styles and script are inline, the histograms are inline
SVG, and the figures are the pair folders' own PNGs by relative path (so the page stays small and
belongs in the run folder). At the top: the counts, the dataset means and the distributions of
deletion and insertion AUC and box mass, the pointing game, and, where the dataset has reference
answers, every figure split by correct and wrong answers. A run of several explainers (``--method``) adds
a table comparing them: each metric's mean with its 95% bootstrap interval per explainer, and the paired
difference to the first explainer with its interval (:func:`~lvlm_heat.reporting.summary.method_comparison`,
the numbers of ``summary.json``'s ``methods``). Below: one card per pair (overlay, question, answer strip,
status and reason, AUCs, curves, pointing hit and box, per-word maps when made; with several explainers,
every explainer's overlay side by side, each drawn by the same figure code on the same colour scale with the
same answer strip, under its title and scores), with filters (explained / not grounded / failed, hits /
misses, correct / wrong), a search box and a sort, 50 cards a page; images load lazily. The pairs travel as
one JSON blob that a small script renders.

The markup is in the package's templates (:mod:`lvlm_heat.reporting.templates`); this module reads the
run and prepares what they show: the overview's numbers, the charts' data (geometry in
:mod:`~lvlm_heat.reporting.report_page`) and each pair's compact record, its answer strip rendered as HTML
by the macro the notebook display uses.

Everything is read back from the run folder (``summary.json`` for the order, each pair's
``result.json``), so ``lvlm-heat report RUN_DIR`` rebuilds the page of any run folder,
finished, resumed or stopped part-way.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lvlm_heat.config import TITLES
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED, ExplanationRecord, MethodMap, WordMap
from lvlm_heat.reporting.figures import UNSTABLE
from lvlm_heat.reporting.outputs import read_record, strict_json, write_atomic
from lvlm_heat.reporting.report_page import histogram, render_page, share_bars
from lvlm_heat.reporting.strip import dark_background, hex_colour, llr_colour, strip_html, strip_tokens
from lvlm_heat.reporting.summary import correctness_split, distribution, method_comparison, run_methods, summary_row

REPORT_FILE = "report.html"
PAGE_SIZE = 50
METRICS = {"deletion_auc": ("deletion AUC (lower is better)", 3),
           "insertion_auc": ("insertion AUC (higher is better)", 3),
           "pointing_hit": ("pointing game (share of hits)", 3),
           "box_mass": ("box mass", 3),
           "passes": ("passes per pair", 1),
           "seconds": ("seconds per pair (map only)", 3)}
"""Each metric of the explainers' table: its label and the decimals it is shown with."""


def read_run(run_dir: Path) -> list[ExplanationRecord]:
    """Every pair's record in ``run_dir`` (without its maps), in the summary's (the dataset's) order.

    Pairs the summary lists without a ``result.json`` keep their summary row (a failure with its
    reason); pair folders the summary does not list (a run stopped before its summary) follow in name
    order.

    Raises:
        LvlmHeatError: ``run_dir`` is missing, not a folder, or holds neither a summary nor any pair.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LvlmHeatError(f"{run_dir} is {'not a folder' if run_dir.exists() else 'missing'}: give a run folder "
                            "(the --output_dir of a run, or lightning_logs/version_N)")
    rows = []
    try:
        rows = json.loads((run_dir / "summary.json").read_text())["rows"]
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LvlmHeatError(f"{run_dir / 'summary.json'} is unreadable ({err}): remove it to build the report "
                            "from the pair folders alone") from err
    records, seen = [], set()
    for row in rows:
        folder = str(row.get("folder") or row.get("id"))
        records.append(read_record(run_dir / folder, maps=False) or ExplanationRecord.from_dict(row))
        seen.add(folder)
    for path in sorted(run_dir.glob("*/result.json")):
        if path.parent.name not in seen:
            record = read_record(path.parent, maps=False)
            if record is not None:
                records.append(record)
    if not records:
        raise LvlmHeatError(f"{run_dir} holds no results (no summary.json, no <pair>/result.json): give a run folder")
    return records


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _image(run_dir: Path, folder: str, name: str | None) -> str | None:
    """The relative URL of ``folder/name`` when the file exists (a missing image would be a console error)."""
    if not name or not (run_dir / folder / name).is_file():
        return None
    return f"{quote(folder)}/{quote(name)}"


def _word_data(run_dir: Path, folder: str, word: WordMap) -> dict[str, Any]:
    return {"word": word.word, "tokens": word.tokens, "deletion_auc": _number(word.deletion.auc),
            "insertion_auc": _number(word.insertion.auc), "unstable": word.unstable, "pointing_hit": word.pointing_hit,
            "box_mass": _number(word.box_mass), "overlay": _image(run_dir, folder, f"overlay_{word.file_stem}.png")}


def _method_data(run_dir: Path, folder: str, found: MethodMap) -> dict[str, Any]:
    place = f"{found.folder}/" if found.folder else ""
    return {"method": found.method, "title": TITLES.get(found.method, found.method),
            "deletion_auc": _number(found.deletion.auc), "insertion_auc": _number(found.insertion.auc),
            "out_of_range": found.out_of_range, "pointing_hit": found.pointing_hit, "box_mass": _number(found.box_mass),
            "passes": found.passes, "seconds": _number(found.seconds),
            "overlay": _image(run_dir, folder, f"{place}overlay.png"),
            "curves": _image(run_dir, folder, f"{place}curves.png")}


def pair_data(run_dir: Path, record: ExplanationRecord, index: int) -> dict[str, Any]:
    """What the page's script needs of one pair (compact: no curves, no history).

    ``strip`` is the answer strip as HTML (:func:`~lvlm_heat.reporting.strip.strip_html`, the notebook's
    string); ``tokens`` lists each shown token as ``[text, background, dark background, explained, space
    before, LLR]`` (the script only asks whether there are any). ``methods`` lists every explainer's map (its
    title, scores and figures) when the pair has more than one, and is empty otherwise. ``shares`` gives each
    image's (or frame's) share of the map for a question about several, and is empty for one image.
    """
    folder = record.folder or record.pair_id
    reliance = record.to_dict()["reliance"]
    return {
        "index": index,
        "id": record.pair_id,
        "folder": folder,
        "status": record.status,
        "reason": record.reason,
        "question": record.question,
        "answer": record.answer,
        "reference": record.reference,
        "answer_match": record.answer_match,
        "correct": record.correct,
        "tokens": [[t.text, hex_colour(llr_colour(t.llr)), dark_background(t.llr), t.selected, t.space_before,
                    _number(t.llr)] for t in strip_tokens(record.tokens)],
        "strip": strip_html(record.tokens),
        "deletion_auc": _number(record.deletion_auc),
        "insertion_auc": _number(record.insertion_auc),
        "p_image": _number(record.p_image),
        "p_baseline": _number(record.p_baseline),
        "unstable": record.unstable,
        "out_of_range": record.out_of_range,
        "bbox": list(record.bbox) if record.bbox else None,
        "pointing_hit": record.pointing_hit,
        "box_mass": _number(record.box_mass),
        "seconds": _number(record.seconds),
        "reliance": reliance,
        "image_notes": record.image_notes,
        "images": {**{name: _image(run_dir, folder, f"{name}.png") for name in ("overlay", "curves", "words")},
                   "frames": _image(run_dir, folder, "frames.gif")},
        "shares": [[("frame " if record.video else "image ") + str(part.index + 1), _number(part.share)]
                   for part in record.images],
        "words": [_word_data(run_dir, folder, word) for word in record.words or []],
        "methods": [_method_data(run_dir, folder, m) for m in record.methods] if len(record.methods) > 1 else [],
    }


def overview(records: list[ExplanationRecord]) -> dict[str, Any]:
    """Counts, means and distributions of the run (the summary's definitions, from the records)."""
    rows = [summary_row(r) for r in records]
    explained = [r for r in rows if r["status"] == EXPLAINED]
    stable = [r for r in explained if not r["unstable_normalization"]]
    hits = [r["pointing_hit"] for r in explained if r["pointing_hit"] is not None]
    judged = [r["correct"] for r in rows if r["correct"] is not None]
    alone = [r["answered_without_image"] for r in rows if r["answered_without_image"] is not None]
    return {
        "pairs": len(rows),
        "counts": {status: sum(r["status"] == status for r in rows) for status in (EXPLAINED, NOT_GROUNDED, FAILED)},
        "unstable": sum(bool(r["unstable_normalization"]) for r in rows),
        "out_of_range": sum(bool(r["curve_out_of_range"]) for r in rows),
        "deletion_auc": distribution([r["deletion_auc"] for r in stable]),
        "insertion_auc": distribution([r["insertion_auc"] for r in stable]),
        "box_mass": distribution([r["box_mass"] for r in explained]),
        "pointing": {"hits": sum(hits), "of": len(hits)},
        "correct": {"count": sum(judged), "of": len(judged)},
        "answered_without_image": {"count": sum(alone), "of": len(alone)},
        "by_correctness": correctness_split(rows),
        "methods": method_comparison(records) if len(run_methods(records)) > 1 else None,  # no table for one
        "rows": rows,
    }


def _model_and_settings(run_dir: Path, records: list[ExplanationRecord]) -> tuple[str, dict[str, Any] | None]:
    try:
        identity = json.loads((run_dir / "run.json").read_text())["identity"]
    except (OSError, ValueError, KeyError, TypeError):
        identity = None
    model = identity.get("model") if isinstance(identity, dict) else None
    model = model or next((r.model for r in records if r.model), "")
    return str(model), identity


def overview_tables(stats: dict[str, Any]) -> dict[str, Any]:
    """What the page's overview shows of :func:`overview`: the counts, the spread of each score, the shares
    (pointing game, correct answers, answers given without the image), the correctness split and the
    explainers' table (:func:`method_table`)."""
    labels = {"deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC", "box_mass": "box mass"}
    ratios = [{"label": label, "count": part[key], "of": part["of"], "share": part[key] / part["of"]}
              for label, part, key in (("pointing game", stats["pointing"], "hits"),
                                       ("correct answers", stats["correct"], "count"),
                                       ("answered without the image", stats["answered_without_image"], "count"))
              if part["of"]]
    return {"pairs": stats["pairs"], "counts": stats["counts"], "unstable": stats["unstable"],
            "out_of_range": stats["out_of_range"], "ratios": ratios, "split": stats["by_correctness"],
            "spreads": [{"label": label, "distribution": stats[name]} for name, label in labels.items()],
            "methods": method_table(stats["methods"])}


def method_table(comparison: dict[str, Any] | None) -> dict[str, Any] | None:
    """The explainers' table of the overview from :func:`~lvlm_heat.reporting.summary.method_comparison`
    (``None`` with fewer than two explainers: a single-method page has no such table).

    Returns:
        ``level``, ``reference`` (the first explainer's title), ``columns`` (each explainer, ``{"label", "pairs",
        "difference": False}``, followed, for all but the first, by its difference to the first, ``{"label",
        "difference": True}``) and ``rows``, one per metric with a value for some explainer: ``{"label",
        "digits", "cells"}``, a cell per column, ``{"mean", "low", "high", "n"}``.
    """
    if comparison is None or len(comparison["by_method"]) < 2:
        return None
    by_method, reference = comparison["by_method"], comparison["reference"]
    first = by_method[reference]["title"]
    columns, parts = [], []
    for name, part in by_method.items():
        columns.append({"label": part["title"], "pairs": part["pairs"], "difference": False})
        parts.append((name, False))
        if name != reference:
            columns.append({"label": f"{part['title']} \u2212 {first}", "pairs": None, "difference": True})
            parts.append((name, True))
    rows = []
    for metric in comparison["metrics"]:
        cells = [by_method[name][metric]["difference"] if difference else by_method[name][metric]
                 for name, difference in parts]
        if any(cell["n"] for cell in cells):
            label, digits = METRICS[metric]
            rows.append({"label": label, "digits": digits, "cells": cells})
    return {"level": comparison["level"], "reference": first, "columns": columns, "rows": rows}


def charts(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The geometry of the overview's charts: histograms of the AUCs and box mass (split by correct and
    wrong answers where the run has references) and the pointing game's share bars."""
    rows = stats["rows"]
    split = stats["by_correctness"] is not None

    def groups(name: str, keep) -> dict[str, list[float]]:
        chosen = [r for r in rows if r["status"] == EXPLAINED and keep(r) and r[name] is not None]
        if not split:
            return {"pairs": [r[name] for r in chosen]}
        return {"correct": [r[name] for r in chosen if r["correct"] is True],
                "wrong": [r[name] for r in chosen if r["correct"] is False],
                "no reference": [r[name] for r in chosen if r["correct"] is None]}

    def stable(row: dict[str, Any]) -> bool:
        return not row["unstable_normalization"]

    drawn = [histogram("deletion AUC (lower is better)", groups("deletion_auc", stable)),
             histogram("insertion AUC (higher is better)", groups("insertion_auc", stable))]
    if stats["box_mass"]["count"]:
        drawn.append(histogram("box mass (share of saliency in the box)", groups("box_mass", lambda r: True)))
    if stats["pointing"]["of"]:
        bars = {"all": [r["pointing_hit"] for r in rows if r["pointing_hit"] is not None]}
        if split:
            for name, wanted in (("correct", True), ("wrong", False)):
                bars[name] = [r["pointing_hit"] for r in rows
                              if r["pointing_hit"] is not None and r["correct"] is wanted]
        drawn.append(share_bars("pointing game (peak in the box)", bars))
    return drawn


def render_report(run_dir: Path) -> str:
    """The page of ``run_dir`` as an HTML string (see the module docstring)."""
    run_dir = Path(run_dir)
    records = read_run(run_dir)
    stats = overview(records)
    model, identity = _model_and_settings(run_dir, records)
    data = {"page_size": PAGE_SIZE, "unstable_mark": UNSTABLE, "references": stats["correct"]["of"] > 0,
            "boxes": stats["pointing"]["of"] > 0, "pairs": [pair_data(run_dir, r, k) for k, r in enumerate(records)]}
    blob = json.dumps(strict_json(data), allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return render_page(name=run_dir.resolve().name, model=model,
                       written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       settings=json.dumps(identity, indent=2) if identity else "(no run.json)",
                       overview=overview_tables(stats), charts=charts(stats) if stats["counts"][EXPLAINED] > 1 else [],
                       data=blob)


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (atomically: a reader never sees half a page) and return its path.

    Raises:
        LvlmHeatError: ``run_dir`` is not a readable run folder.
    """
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    write_atomic(path, render_report(run_dir))
    return path
