"""What a sanity run reports: the dataset summary of :func:`~lvlm_heat.sanity.checks.sanity_check`'s
records, the printed table, and a few lines saying what the figures mean.

How to read them (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"): a map that explains the
model must lose its rank correlation with the original map as the model is randomised, and must
change with the answer it explains; the *re-run* (same model, other noise seed) gives the correlation
a map has with itself, the ceiling the others are read against. The reference explainers say whether
the optimised mask localises and ranks evidence better than plain occlusion on this data.
"""

from __future__ import annotations

import math
from typing import Any

from lvlm_heat.config import TITLES
from lvlm_heat.reporting.summary import distribution

DECORRELATED = 0.5
"""A map whose rank correlation with the original stays above this on a fully randomised model reflects
the image, not the model."""


def summarise(records: list[dict[str, Any]], cascade: dict[str, Any] | None) -> dict[str, Any]:
    """Dataset figures of the per-pair records.

    AUCs leave out pairs whose normalisation is unstable (``p(I) - p(B)`` below ``min_gap``), as
    ``train.py``'s summary does; the pointing game counts the pairs with a box.
    """
    checked = [r for r in records if "methods" in r]
    stable = [r for r in checked if not r.get("unstable")]
    methods = {}
    for name in (checked[0]["methods"] if checked else ()):  # the explainer under test first, then the others
        rows = [r["methods"][name] for r in checked]
        boxed = [m for m in rows if m["pointing_hit"] is not None]
        methods[name] = {
            "pointing_game": sum(m["pointing_hit"] for m in boxed) / len(boxed) if boxed else None,
            "pairs_with_box": len(boxed),
            "box_mass": distribution([m["box_mass"] for m in boxed]),
            "deletion_auc": distribution([r["methods"][name]["deletion_auc"] for r in stable]),
            "insertion_auc": distribution([r["methods"][name]["insertion_auc"] for r in stable]),
            "curve_out_of_range": sum(bool(m["curve_out_of_range"]) for m in rows),
            "passes": distribution([m["passes"] for m in rows]),
            "seconds": distribution([m["seconds"] for m in rows]),
        }
    summary: dict[str, Any] = {
        "pairs": len(records),
        "checked": len(checked),
        "not_grounded": sum(r.get("status") == "not_grounded" for r in records),
        "failed": sum(r.get("status") == "failed" for r in records),
        "unstable": len(checked) - len(stable),
        "methods": methods,
    }
    for key in ("rerun", "random_answer"):
        rows = [r[key] for r in checked if key in r]
        summary[key] = {"spearman": distribution([x["spearman"] for x in rows]),
                        "top_overlap": distribution([x["top_overlap"] for x in rows])} if rows else None
    if summary["random_answer"] is not None:  # another pair's answer, or this answer's words shuffled
        sources = [r["random_answer"]["source"] for r in checked if "random_answer" in r]
        summary["random_answer"]["shuffled"] = sources.count("shuffled")
        summary["random_answer"]["other_pair"] = sum(s not in (None, "shuffled") for s in sources)
    if cascade is not None:
        stages = []
        for k, stage in enumerate(cascade["stages"]):
            rows = [r["randomisation"][k] for r in checked]
            stages.append({**stage, **{key: distribution([x[key] for x in rows]) for key in ("spearman", "top_overlap",
                                                                                      "p_image")}})
        summary["randomisation"] = {"cascade": cascade["cascade"], "stages": stages}
    return summary


def _fmt(value: float | None, digits: int = 2, percent: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.0f}%" if percent else f"{value:.{digits}f}"


def table(summary: dict[str, Any]) -> str:
    """The printed table: the explainers' metrics, then the correlations with the original map."""
    lines = [(f"{summary['checked']} of {summary['pairs']} pairs checked ({summary['not_grounded']} not grounded, "
              f"{summary['failed']} failed, {summary['unstable']} with an unstable normalisation left out of the "
              "AUCs)"),
             "",
             (f"{'explainer':<22}{'pointing':>10}{'box mass':>10}{'deletion':>10}{'insertion':>11}{'passes':>8}"
              f"{'seconds':>9}   (means; AUCs over the mask grid)")]
    for name, m in summary["methods"].items():
        lines.append(f"{TITLES[name]:<22}{_fmt(m['pointing_game'], percent=True):>10}{_fmt(m['box_mass']['mean']):>10}"
                     f"{_fmt(m['deletion_auc']['mean'], 3):>10}{_fmt(m['insertion_auc']['mean'], 3):>11}"
                     f"{_fmt(m['passes']['mean'], 0):>8}{_fmt(m['seconds']['mean'], 1):>9}")
    lines += ["", (f"{'map compared with the original':<48}{'Spearman':>10}{'top-k':>8}{'p(answer)':>11}"
                   "   (means over pairs)")]

    def row(label: str, entry: dict[str, Any] | None) -> None:
        if entry is not None:
            p_answer = _fmt(entry["p_image"]["mean"], 3) if "p_image" in entry else ""
            lines.append(f"{label:<48}{_fmt(entry['spearman']['mean']):>10}{_fmt(entry['top_overlap']['mean']):>8}"
                         f"{p_answer:>11}")

    row("re-run, other noise seed", summary.get("rerun"))
    row("another answer on the same image", summary.get("random_answer"))
    randomisation = summary.get("randomisation") or {}
    for stage in randomisation.get("stages", []):
        share = 100 * stage["parameter_fraction"]
        row(f"randomised: {stage['stage']} ({share:.{0 if share >= 10 or share == 0 else 1}f}% of weights)", stage)
    if randomisation:
        cascade = randomisation["cascade"]
        shown = cascade if len(cascade) <= 6 else [*cascade[:3], "...", *cascade[-2:]]
        lines.append(f"(blocks, top first: {', '.join(shown)})")
    return "\n".join(lines)


def interpretation(summary: dict[str, Any]) -> list[str]:
    """Short lines saying what the figures mean for this model and data."""
    lines = []
    rerun = (summary.get("rerun") or {}).get("spearman", {}).get("mean")
    floor = f"; a re-run with other noise gives {_fmt(rerun)}" if rerun is not None else ""
    stages = (summary.get("randomisation") or {}).get("stages", [])
    if stages and stages[-1]["spearman"]["mean"] is not None:
        last = stages[-1]["spearman"]["mean"]
        verdict = "change" if last < DECORRELATED else "do NOT change enough"
        lines.append(f"maps {verdict} when the model is randomised: rank correlation {last:.2f} at full randomisation "
                     f"({stages[-1]['stage']}){floor} (a map that stays correlated > {DECORRELATED} reflects the "
                     "image, not the model)")
    answer = (summary.get("random_answer") or {}).get("spearman", {}).get("mean")
    if answer is not None:
        depends = rerun is None or answer < rerun - 0.1
        random = summary["random_answer"]
        kind = "another pair's answer" if not random["shuffled"] else "a shuffled answer" if not random["other_pair"] \
            else f"another pair's answer ({random['other_pair']} pairs) or a shuffled one ({random['shuffled']})"
        lines.append(f"maps {'depend' if depends else 'barely depend'} on the answer explained: rank correlation "
                     f"{answer:.2f} with {kind} on the same image{floor} (both answers may rest on the same object)")
    if not summary["methods"]:
        return lines
    tested = next(iter(summary["methods"]))
    mask, superpixel = summary["methods"][tested], summary["methods"]["superpixel"]
    if tested == "superpixel":
        return lines
    title = "the optimised mask" if tested == "igos" else TITLES[tested]
    if mask["pointing_game"] is not None and superpixel["pointing_game"] is not None:
        better = (mask["pointing_game"], mask["box_mass"]["mean"] or 0) > (superpixel["pointing_game"],
                                                                          superpixel["box_mass"]["mean"] or 0)
        lines.append(f"localisation: {title} {'beats' if better else 'does NOT beat'} superpixel occlusion "
                     f"(pointing game {_fmt(mask['pointing_game'], percent=True)} vs "
                     f"{_fmt(superpixel['pointing_game'], percent=True)}, box mass {_fmt(mask['box_mass']['mean'])} vs "
                     f"{_fmt(superpixel['box_mass']['mean'])}, over {mask['pairs_with_box']} pairs with a box)")
    if mask["deletion_auc"]["count"]:
        lines.append(f"evidence ranking: deletion AUC {_fmt(mask['deletion_auc']['mean'], 3)} vs "
                     f"{_fmt(superpixel['deletion_auc']['mean'], 3)} (lower is better), insertion AUC "
                     f"{_fmt(mask['insertion_auc']['mean'], 3)} vs {_fmt(superpixel['insertion_auc']['mean'], 3)} "
                     f"(higher is better), at {_fmt(mask['passes']['mean'], 0)} vs "
                     f"{_fmt(superpixel['passes']['mean'], 0)} forward passes per pair")
    return lines
