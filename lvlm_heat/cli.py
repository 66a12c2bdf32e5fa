"""The command line: ``python train.py [--config configs/x.yaml] [--option value ...]``.

The signature of :func:`run` is the configuration: every parameter is a flag, nested
dataclasses become dotted flags (``--optim.iterations 10``), and a YAML file given with
``--config`` sets any of them. ``python train.py --help`` lists them all.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lvlm_heat.adapters import Precision
from lvlm_heat.baseline import BaselineKind
from lvlm_heat.data import DEMO_PAIRS, Pair, load_image, read_pairs
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.explainer import OptimConfig
from lvlm_heat.pipeline import ExplainConfig, Explanation
from lvlm_heat.selection import SelectionConfig

log = logging.getLogger("lvlm_heat")


def next_run_dir(root: Path) -> Path:
    """``root/version_N`` with the first free ``N``, as Lightning names its runs."""
    root.mkdir(parents=True, exist_ok=True)
    taken = {int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()}
    number = 0
    while number in taken:
        number += 1
    return root / f"version_{number}"


def describe(result: Explanation, folder: Path | None) -> str:
    """The lines printed for one pair."""
    tokens = " ".join(
        f"[{t.text.strip()} {t.llr:+.2f}]" if t.selected else f"{t.text.strip()} {t.llr:+.2f}"
        for t in result.tokens
        if not t.special
    )
    lines = [f"[{result.pair_id}] Q: {result.question}", f"  answer: {result.answer}", f"  tokens (LLR, [selected]): {tokens}"]
    if result.status == "explained":
        flag = "  (unstable: p(I) - p(B) below min_gap)" if result.unstable else ""
        lines.append(
            f"  deletion AUC {result.deletion_auc:.3f}  insertion AUC {result.insertion_auc:.3f}  "
            f"p(I) {result.p_image:.3f}  p(B) {result.p_baseline:.3f}  {result.seconds:.1f}s{flag}"
        )
    else:
        lines.append("  not visually grounded: no answer token passes the LLR threshold; no heatmap")
    if folder is not None:
        lines.append(f"  -> {folder / result.pair_id}")
    return "\n".join(lines)


def run(
    model: str = "demo",
    image: Path | None = None,
    question: str | None = None,
    answer: str | None = None,
    pairs: Path | None = None,
    output_dir: Path | None = None,
    logs_root: Path = Path("lightning_logs"),
    precision: Precision = "auto",
    device: str = "auto",
    adapter: str | None = None,
    gradient_checkpointing: bool = False,
    baseline: BaselineKind = "blur",
    max_new_tokens: int = 32,
    min_gap: float = 0.05,
    optim: OptimConfig = OptimConfig(),
    select: SelectionConfig = SelectionConfig(),
) -> list[Explanation]:
    """Explain where a vision-language model looks when it answers questions about images.

    With no arguments, explains the shipped demo pairs with the shipped demo model.

    Args:
        model: Hugging Face hub id, local folder saved with ``save_pretrained``, or a shipped demo
            model: ``demo`` (LLaVA format) or ``demo-qwen2-vl``.
        image: Image of a single pair (with ``--question``).
        question: Question of a single pair.
        answer: Explain this answer instead of the model's own (greedy) answer.
        pairs: JSONL file of pairs (``image``, ``question``, optional ``id``, ``answer``, ``bbox``);
            default, when no ``--image`` is given: the demo pairs.
        output_dir: Where results go; default: a new ``version_N`` folder under ``logs_root``.
        logs_root: Parent of the default run folders.
        precision: Model weights: ``auto`` (bf16/fp16 on a GPU, fp32 on the CPU), fp32, bf16, fp16.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        adapter: Import path of an adapter class (``package.module.Class``) for models the
            auto-detection does not know.
        gradient_checkpointing: Recompute the model's activations in the backward pass: less
            memory on large models for about one extra forward pass.
        baseline: Reference image B: ``blur``, ``black`` or ``noise``.
        max_new_tokens: Length limit of generated answers.
        min_gap: Flag pairs whose ``p(I) - p(B)`` is below this (unstable normalisation).
        optim: Mask optimisation settings.
        select: Which answer tokens are explained.
    """
    from lvlm_heat.api import Explainer

    if (image is None) != (question is None):
        raise LvlmHeatError("give --image and --question together (or neither, to explain --pairs or the demo pairs)")
    if image is not None:
        load_image(image)  # fail before the model loads
        todo = [Pair(Path(image).stem, Path(image), question, answer)]
    else:
        todo = read_pairs(pairs or DEMO_PAIRS)
    config = ExplainConfig(baseline=baseline, max_new_tokens=max_new_tokens, min_gap=min_gap, optim=optim, select=select)
    explainer = Explainer(model, precision=precision, device=device, adapter=adapter,
                          gradient_checkpointing=gradient_checkpointing, config=config)
    folder = Path(output_dir) if output_dir is not None else next_run_dir(Path(logs_root))
    print(f"model {model} on {explainer.adapter.device} ({explainer.adapter.dtype}); outputs in {folder}", flush=True)
    results = []
    for pair in todo:
        result = explainer.explain(pair.image, pair.question, answer or pair.answer, pair_id=pair.id, output_dir=folder)
        print(describe(result, folder), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> list[Explanation] | None:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run; user errors become one line and exit 1."""
    from argparse import ArgumentError

    from jsonargparse import CLI, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    try:
        return CLI(run, args=argv, as_positional=False, exit_on_error=False)
    except ArgumentError as err:
        message = " ".join(str(err).split())
        print(f"error: {message} (see python train.py --help)", file=sys.stderr)
        raise SystemExit(2) from None
    except LvlmHeatError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except ValueError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2) from None
