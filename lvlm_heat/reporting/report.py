"""``report.html``: one page to look at a run, one pair or thousands.

The page is self-contained and works offline: styles and script are inline, the histograms are inline
SVG, and the figures are the pair folders' own PNGs by relative path (so the page stays small and
belongs in the run folder). At the top: the counts, the dataset means and the distributions of
deletion and insertion AUC and box mass, the pointing game, and, where the dataset has reference
answers, every figure split by correct and wrong answers. Below: one card per pair (overlay, question,
answer strip, status and reason, AUCs, curves, pointing hit and box, per-word maps when made), with
filters (explained / not grounded / failed, hits / misses, correct / wrong), a search box and a sort,
50 cards a page; images load lazily. The pairs travel as one JSON blob that a small script renders.

Everything is read back from the run folder (``summary.json`` for the order, each pair's
``result.json``), so ``python -m lvlm_heat.report RUN_DIR`` rebuilds the page of any run folder,
finished, resumed or stopped part-way.
"""

from __future__ import annotations

import html
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED, ExplanationRecord
from lvlm_heat.reporting.outputs import strict_json
from lvlm_heat.reporting.report_page import histogram_svg, page, share_bar_svg
from lvlm_heat.reporting.strip import dark_background, hex_colour, llr_colour, strip_tokens
from lvlm_heat.reporting.summary import correctness_split, distribution, summary_row

REPORT_FILE = "report.html"
PAGE_SIZE = 50


def read_run(run_dir: Path) -> list[dict[str, Any]]:
    """Every pair's record in ``run_dir``, in the summary's (the dataset's) order.

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
        records.append(_read_record(run_dir / str(row.get("folder") or row.get("id"))) or row)
        seen.add(str(row.get("folder")))
    for path in sorted(run_dir.glob("*/result.json")):
        if path.parent.name not in seen:
            record = _read_record(path.parent)
            if record is not None:
                records.append(record)
    if not records:
        raise LvlmHeatError(f"{run_dir} holds no results (no summary.json, no <pair>/result.json): give a run folder")
    return records


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "status" not in record:
        return None
    record.setdefault("folder", folder.name)
    return record


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _image(run_dir: Path, folder: str, name: str | None) -> str | None:
    """The relative URL of ``folder/name`` when the file exists (a missing image would be a console error)."""
    if not name or not (run_dir / folder / name).is_file():
        return None
    return f"{quote(folder)}/{quote(name)}"


def pair_data(run_dir: Path, record: dict[str, Any], index: int) -> dict[str, Any]:
    """What the page's script needs of one pair (compact: no curves, no history)."""
    folder = str(record.get("folder") or record.get("id"))
    row = summary_row(ExplanationRecord.from_dict(record))
    reliance = record.get("reliance") or None
    words = []
    for word in record.get("words") or []:
        words.append({"word": word.get("word"), "tokens": word.get("tokens"),
                      "deletion_auc": _number(word.get("deletion_auc")),
                      "insertion_auc": _number(word.get("insertion_auc")), "pointing_hit": word.get("pointing_hit"),
                      "box_mass": _number(word.get("box_mass")), "overlay": _image(run_dir, folder, word.get("overlay"))})
    return {
        "index": index,
        "id": str(record.get("id", folder)),
        "folder": folder,
        "status": record.get("status", FAILED),
        "reason": record.get("reason"),
        "question": record.get("question"),
        "answer": record.get("answer"),
        "reference": record.get("reference"),
        "answer_match": record.get("answer_match"),
        "correct": row["correct"],
        # text, background, dark background, explained, space before, LLR
        "tokens": [[t.text, hex_colour(llr_colour(t.llr)), dark_background(t.llr), t.selected, t.space_before,
                    _number(t.llr)] for t in strip_tokens(record.get("tokens") or [])],
        "deletion_auc": _number(record.get("deletion_auc")),
        "insertion_auc": _number(record.get("insertion_auc")),
        "p_image": _number(record.get("p_image")),
        "p_baseline": _number(record.get("p_baseline")),
        "unstable": bool(record.get("unstable_normalization")),
        "out_of_range": bool(record.get("curve_out_of_range")),
        "bbox": record.get("bbox"),
        "pointing_hit": record.get("pointing_hit"),
        "box_mass": _number(record.get("box_mass")),
        "seconds": _number(record.get("seconds")),
        "reliance": reliance,
        "image_notes": record.get("image_notes") or [],
        "images": {name: _image(run_dir, folder, f"{name}.png") for name in ("overlay", "curves", "words")},
        "words": words,
    }


def overview(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, means and distributions of the run (the summary's definitions, from the records)."""
    rows = [summary_row(ExplanationRecord.from_dict(r)) for r in records]
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
        "rows": rows,
    }


def _model_and_settings(run_dir: Path, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    try:
        identity = json.loads((run_dir / "run.json").read_text())["identity"]
    except (OSError, ValueError, KeyError, TypeError):
        identity = None
    model = identity.get("model") if isinstance(identity, dict) else None
    model = model or next((r.get("model") for r in records if r.get("model")), "")
    return str(model), identity


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _means_table(stats: dict[str, Any]) -> str:
    def spread(name: str) -> str:
        d = stats[name]
        if not d["count"]:
            return f"<tr><th>{name.replace('_', ' ')}</th><td colspan=3>n/a</td></tr>"
        return (f"<tr><th>{name.replace('_auc', ' AUC').replace('_', ' ')}</th><td>{_fmt(d['mean'])}</td>"
                f"<td>{_fmt(d['median'])} [{_fmt(d['q25'])}, {_fmt(d['q75'])}]</td><td>{d['count']}</td></tr>")

    def ratio(label: str, part: dict[str, int], key: str = "count") -> str:
        if not part["of"]:
            return ""
        return (f"<tr><th>{label}</th><td>{part[key] / part['of']:.3f}</td><td>{part[key]} of {part['of']}</td>"
                f"<td>{part['of']}</td></tr>")

    body = "".join(spread(name) for name in ("deletion_auc", "insertion_auc", "box_mass"))
    body += ratio("pointing game", stats["pointing"], "hits")
    body += ratio("correct answers", stats["correct"])
    body += ratio("answered without the image", stats["answered_without_image"])
    return ("<table class='means'><thead><tr><th></th><th>mean</th><th>median [quartiles]</th><th>pairs</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def _split_table(split: dict[str, Any] | None) -> str:
    if split is None:
        return ""
    rows = []
    for name in ("correct", "wrong"):
        part = split[name]
        pointing = part["pointing_game"]
        rows.append(
            f"<tr><th>{name}</th><td>{part['pairs']}</td><td>{part['explained']}</td>"
            f"<td>{_fmt(part['deletion_auc']['mean'])}</td><td>{_fmt(part['insertion_auc']['mean'])}</td>"
            f"<td>{_fmt(pointing['share'])} ({pointing['count']}/{pointing['of']})</td>"
            f"<td>{_fmt(part['box_mass']['mean'])}</td></tr>")
    return ("<h3>Focus versus correctness</h3><table class='means split'><thead><tr><th>answer</th><th>pairs</th>"
            "<th>explained</th><th>deletion AUC</th><th>insertion AUC</th><th>pointing game</th><th>box mass</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _charts(stats: dict[str, Any]) -> str:
    rows = stats["rows"]
    split = stats["by_correctness"] is not None

    def groups(name: str, keep) -> dict[str, list[float]]:
        chosen = [r for r in rows if r["status"] == EXPLAINED and keep(r) and r[name] is not None]
        if not split:
            return {"pairs": [r[name] for r in chosen]}
        return {"correct": [r[name] for r in chosen if r["correct"] is True],
                "wrong": [r[name] for r in chosen if r["correct"] is False],
                "no reference": [r[name] for r in chosen if r["correct"] is None]}

    charts = [
        histogram_svg("deletion AUC (lower is better)", groups("deletion_auc", lambda r: not r["unstable_normalization"])),
        histogram_svg("insertion AUC (higher is better)",
                      groups("insertion_auc", lambda r: not r["unstable_normalization"])),
    ]
    if stats["box_mass"]["count"]:
        charts.append(histogram_svg("box mass (share of saliency in the box)", groups("box_mass", lambda r: True)))
    if stats["pointing"]["of"]:
        bars = {"all": [r["pointing_hit"] for r in rows if r["pointing_hit"] is not None]}
        if split:
            for name, wanted in (("correct", True), ("wrong", False)):
                bars[name] = [r["pointing_hit"] for r in rows if r["pointing_hit"] is not None and r["correct"] is wanted]
        charts.append(share_bar_svg("pointing game (peak in the box)", bars))
    return "".join(f"<figure class='chart'>{chart}</figure>" for chart in charts)


def render_report(run_dir: Path) -> str:
    """The page of ``run_dir`` as an HTML string (see the module docstring)."""
    run_dir = Path(run_dir)
    records = read_run(run_dir)
    stats = overview(records)
    model, identity = _model_and_settings(run_dir, records)
    counts = stats["counts"]
    flags = []
    if stats["unstable"]:
        flags.append(f"{stats['unstable']} with an unstable normalisation (left out of the AUCs)")
    if stats["out_of_range"]:
        flags.append(f"{stats['out_of_range']} with a curve leaving [0, 1]")
    summary = (f"<p class='counts'><b>{stats['pairs']}</b> pair(s): <b>{counts[EXPLAINED]}</b> explained, "
               f"<b>{counts[NOT_GROUNDED]}</b> not visually grounded, <b>{counts[FAILED]}</b> failed"
               f"{'; ' + '; '.join(flags) if flags else ''}.</p>")
    overview_html = summary + _means_table(stats) + _split_table(stats["by_correctness"])
    if counts[EXPLAINED] > 1:
        overview_html += f"<div class='charts'>{_charts(stats)}</div>"
    settings = json.dumps(identity, indent=2) if identity else "(no run.json)"
    data = {"page_size": PAGE_SIZE, "references": stats["correct"]["of"] > 0,
            "boxes": stats["pointing"]["of"] > 0, "pairs": [pair_data(run_dir, r, k) for k, r in enumerate(records)]}
    blob = json.dumps(strict_json(data), allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return page(title=html.escape(f"lvlm_heat report: {run_dir.resolve().name}"),
                heading=html.escape(run_dir.resolve().name), model=html.escape(model), written=written,
                settings=html.escape(settings), overview=overview_html, data=blob)


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (atomically: a reader never sees half a page) and return its path.

    Raises:
        LvlmHeatError: ``run_dir`` is not a readable run folder.
    """
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    path = run_dir / REPORT_FILE
    partial = path.with_suffix(".html.tmp")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)
    return path
