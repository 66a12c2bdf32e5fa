"""The command line: ``python train.py [--config configs/x.yaml] [--option value ...]``.

The signature of :func:`run` is the configuration: every parameter is a flag, nested
dataclasses become dotted flags (``--optim.iterations 10``), and a YAML file given with
``--config`` sets any of them. ``python train.py --help`` lists them all.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lvlm_heat.adapters import Precision
from lvlm_heat.baseline import BaselineKind
from lvlm_heat.data import DEMO_MODELS
from lvlm_heat.datasets import DataConfig, Pair, load_image, read_dataset
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.explainer import OptimConfig
from lvlm_heat.pipeline import ExplainConfig
from lvlm_heat.runner import TrainerConfig
from lvlm_heat.selection import SelectionConfig

RUN_DIR_ENV = "LVLM_HEAT_RUN_DIR"


def next_run_dir(root: Path) -> Path:
    """``root/version_N`` with the first free ``N``, as Lightning names its runs."""
    root.mkdir(parents=True, exist_ok=True)
    taken = {int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()}
    number = 0
    while number in taken:
        number += 1
    return root / f"version_{number}"


def describe(record: dict[str, Any], folder: Path | None) -> str:
    """The lines printed for one pair, from its ``result.json`` record."""
    lines = [f"[{record['id']}] Q: {record.get('question', '')}"]
    if record["status"] == "failed":
        return "\n".join([*lines, f"  failed: {record.get('reason')}"])
    tokens = " ".join(
        f"[{t['text'].strip()} {t['llr']:+.2f}]" if t["selected"] else f"{t['text'].strip()} {t['llr']:+.2f}"
        for t in record["tokens"]
        if not t["special"]
    )
    lines += [f"  answer: {record['answer']}", f"  tokens (LLR, [selected]): {tokens}"]
    if record["status"] == "explained":
        flag = "  (unstable: p(I) - p(B) below min_gap)" if record["unstable_normalization"] else ""
        lines.append(
            f"  deletion AUC {record['deletion_auc']:.3f}  insertion AUC {record['insertion_auc']:.3f}  "
            f"p(I) {record['p_image']:.3f}  p(B) {record['p_baseline']:.3f}  {record['seconds']:.1f}s{flag}"
        )
    else:
        lines.append("  not visually grounded: no answer token passes the LLR threshold; no heatmap")
    if folder is not None:
        lines.append(f"  -> {folder / record['id']}")
    return "\n".join(lines)


def _run_folder(output_dir: Path | None, logs_root: Path) -> Path:
    """The run folder, the same in every process of a multi-process run."""
    if output_dir is not None:
        return Path(output_dir)
    if RUN_DIR_ENV in os.environ:  # a process launched by rank 0 (Lightning's launcher copies the environment)
        return Path(os.environ[RUN_DIR_ENV])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LvlmHeatError("a multi-process launch (torchrun, SLURM) needs --output_dir: every process must write there")
    return next_run_dir(Path(logs_root))


def run(
    model: str = "demo",
    image: Path | None = None,
    question: str | None = None,
    answer: str | None = None,
    data: DataConfig = DataConfig(),
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
    trainer: TrainerConfig = TrainerConfig(),
    progress: bool = True,
) -> dict[str, Any] | None:
    """Explain where a vision-language model looks when it answers questions about images.

    With no arguments, explains the shipped demo pairs with the shipped demo model.

    Args:
        model: Hugging Face hub id, local folder saved with ``save_pretrained``, or a shipped demo
            model: ``demo`` (LLaVA format) or ``demo-qwen2-vl``.
        image: Image of a single pair (with ``--question``); otherwise ``--data`` is explained.
        question: Question of a single pair.
        answer: Explain this answer instead of the model's own (greedy) answer (single pair).
        data: The dataset to explain when no ``--image`` is given (default: the demo pairs).
        output_dir: Where results go; default: a new ``version_N`` folder under ``logs_root``. Re-running
            into a folder skips the pairs already finished there.
        logs_root: Parent of the default run folders.
        precision: Model weights: ``auto`` (bf16/fp16 on a GPU, fp32 on the CPU), fp32, bf16, fp16.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (single process; see ``--trainer`` for several).
        adapter: Import path of an adapter class (``package.module.Class``) for models the
            auto-detection does not know.
        gradient_checkpointing: Recompute the model's activations in the backward pass: less
            memory on large models for about one extra forward pass.
        baseline: Reference image B: ``blur``, ``black`` or ``noise``.
        max_new_tokens: Length limit of generated answers.
        min_gap: Flag pairs whose ``p(I) - p(B)`` is below this (unstable normalisation); flagged
            pairs are left out of the mean AUCs.
        optim: Mask optimisation settings.
        select: Which answer tokens are explained.
        trainer: Processes and devices of a dataset run (``--trainer.devices 8``).
        progress: Show progress bars.

    Returns:
        The summary (on the process of rank 0).
    """
    from tqdm.auto import tqdm

    from lvlm_heat.adapters import check_model, resolve_device
    from lvlm_heat.pipeline import quiet_libraries
    from lvlm_heat.runner import run_dataset

    quiet_libraries()
    if (image is None) != (question is None):
        raise LvlmHeatError("give --image and --question together (or neither, to explain --data.path or the demo pairs)")
    if image is not None:
        load_image(image)  # fail before the model loads
        if not question.strip():
            raise LvlmHeatError("the question is empty: give a question about the image")
        pairs = [Pair(Path(image).stem, Path(image), question, answer)]
    else:
        if answer is not None:
            raise LvlmHeatError("--answer goes with --image; a dataset gives answers in its answer field")
        pairs = read_dataset(data)
    config = ExplainConfig(baseline=baseline, max_new_tokens=max_new_tokens, min_gap=min_gap, optim=optim, select=select)
    checkpoint = str(DEMO_MODELS.get(model, model))
    check_model(checkpoint, adapter)
    folder = _run_folder(output_dir, logs_root)
    accelerator = trainer.accelerator
    if trainer.devices in (1, "1") and accelerator == "auto":  # one process: --device says where
        accelerator = "gpu" if resolve_device(device).type == "cuda" else "cpu"
    load = dict(model=checkpoint, precision=precision, adapter=adapter, gradient_checkpointing=gradient_checkpointing)
    print(f"model {model}: {len(pairs)} pair(s); outputs in {folder}", flush=True)
    os.environ[RUN_DIR_ENV] = str(folder)
    try:
        summary = run_dataset(pairs, load, config, folder, replace(trainer, accelerator=accelerator),
                              multiple_choice=data.multiple_choice, progress=progress,
                              report=lambda record: tqdm.write(describe(record, folder)))
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if summary is not None:
        means = summary["means"]
        print(
            f"{summary['explained']} explained, {summary['not_grounded']} not visually grounded, {summary['failed']} "
            f"failed; mean deletion AUC {_fmt(means['deletion_auc'])}, insertion AUC {_fmt(means['insertion_auc'])}"
            f"; summary in {folder / 'summary.json'}",
            flush=True,
        )
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
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
