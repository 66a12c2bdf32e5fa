"""What the command line prints, and the library chatter it silences."""

from __future__ import annotations

import logging
import textwrap
import warnings
from pathlib import Path
from typing import Any

from lvlm_heat.record import EXPLAINED, FAILED, ExplanationRecord

QUESTION_SHOWN = 200
"""Characters of a question echoed on the console (the whole question is in ``result.json``)."""


def quiet_libraries() -> None:
    """Silence per-trainer banners and loading chatter; a run makes one trainer per pair."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # a pair's own metrics: nothing to sync


def describe(record: ExplanationRecord, folder: Path | None) -> str:
    """The lines printed for one pair."""
    lines = [f"[{record.pair_id}] Q: {textwrap.shorten(record.question, QUESTION_SHOWN, placeholder=' [...]')}"]
    if record.status == FAILED:
        return "\n".join([*lines, f"  failed: {record.reason}"])
    tokens = " ".join(f"[{t.text.strip()} {t.llr:+.2f}]" if t.selected else f"{t.text.strip()} {t.llr:+.2f}"
                      for t in record.tokens if not t.special)
    lines += [f"  answer: {record.answer}", f"  tokens (LLR, [selected]): {tokens}"]
    lines += [f"  warning: {warning}" for warning in record.warnings]
    if record.status == EXPLAINED:
        flag = "  (unstable: p(I) - p(B) below min_gap)" if record.unstable else ""
        if record.out_of_range:
            flag += "  (a normalised curve leaves [0, 1]: read the AUCs with care)"
        lines.append(
            f"  deletion AUC {record.deletion_auc:.3f}  insertion AUC {record.insertion_auc:.3f}  "
            f"p(I) {record.p_image:.3f}  p(B) {record.p_baseline:.3f}  {record.seconds:.1f}s{flag}"
        )
        if record.images:
            kind = "frame" if record.video else "image"
            lines.append("  share of the map: " + "  ".join(f"{kind} {part.index + 1} {part.share:.2f}"
                                                            for part in record.images))
    else:
        lines.append("  not visually grounded: no answer token depends on the image or on a region of it; no heatmap")
    if folder is not None:
        lines.append(f"  -> {folder / (record.folder or record.pair_id)}")
    return "\n".join(lines)


def summary_line(summary: dict[str, Any], folder: Path) -> str:
    """The closing line of a run: counts and mean AUCs."""

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    means = summary["means"]
    return (
        f"{summary['explained']} explained, {summary['not_grounded']} not visually grounded, {summary['failed']} "
        f"failed; mean deletion AUC {number(means['deletion_auc'])}, insertion AUC {number(means['insertion_auc'])}"
        f"; summary in {folder / 'summary.json'}"
    )
