"""The command line: ``python train.py [--config configs/x.yaml] [--option value ...]``.

The signature of :func:`run` is the configuration: every parameter is a flag, nested
dataclasses become dotted flags (``--data.path``), and the fields of
:class:`~lvlm_heat.config.ExplainConfig` are flags of their own (``--baseline``,
``--optim.iterations 10``), so every default is written once, in :mod:`lvlm_heat.config`. A YAML
file given with ``--config`` sets any of them; ``python train.py --help`` lists them all.
"""

from __future__ import annotations

import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from lvlm_heat.config import DataConfig, ExplainConfig, Precision, TrainerConfig
from lvlm_heat.errors import LvlmHeatError


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
    explain: ExplainConfig | None = None,
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
        explain: The explanation settings (on the command line, their fields are flags of their own:
            ``--baseline``, ``--max_new_tokens``, ``--min_gap``, ``--optim.*``, ``--select.*``).
        trainer: Processes and devices of a dataset run (``--trainer.devices 8``).
        progress: Show progress bars.

    Returns:
        The summary (on the process of rank 0).
    """
    from tqdm.auto import tqdm

    from lvlm_heat.adapters import check_model, resolve_device
    from lvlm_heat.data import Pair, load_image, read_dataset
    from lvlm_heat.dataset_run import run_dataset
    from lvlm_heat.demo import DEMO_MODELS
    from lvlm_heat.reporting.console import describe, quiet_libraries, summary_line
    from lvlm_heat.reporting.outputs import RUN_DIR_ENV, run_dir

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
    checkpoint = str(DEMO_MODELS.get(model, model))
    check_model(checkpoint, adapter)
    folder = run_dir(output_dir, logs_root)
    accelerator = trainer.accelerator
    if trainer.devices in (1, "1") and accelerator == "auto":  # one process: --device says where
        accelerator = "gpu" if resolve_device(device).type == "cuda" else "cpu"
    load = dict(model=checkpoint, precision=precision, adapter=adapter, gradient_checkpointing=gradient_checkpointing)
    print(f"model {model}: {len(pairs)} pair(s); outputs in {folder}", flush=True)
    os.environ[RUN_DIR_ENV] = str(folder)
    try:
        summary = run_dataset(pairs, load, explain or ExplainConfig(), folder, replace(trainer, accelerator=accelerator),
                              multiple_choice=data.multiple_choice, progress=progress,
                              report=lambda record: tqdm.write(describe(record, folder)))
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if summary is not None:
        print(summary_line(summary, folder), flush=True)
    return summary


def build_parser(function=run):
    """The parser of ``function`` (default :func:`run`, i.e. ``train.py``): its parameters as flags, and
    the fields of its ``explain: ExplainConfig`` parameter as flags of their own at the top level."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(description=function.__doc__.split("\n\n")[0], exit_on_error=False)
    parser.add_argument("--config", action="config", help="YAML file setting any of the options below.")
    parser.add_function_arguments(function, skip={"explain"}, as_group=False)
    parser.add_class_arguments(ExplainConfig, nested_key=None)
    return parser


def parse(argv: list[str] | None = None, function=run) -> dict[str, Any]:
    """Keyword arguments of ``function`` (default :func:`run`) for the command-line arguments ``argv``."""
    parser = build_parser(function)
    options = vars(parser.instantiate(parser.parse_args(argv)))
    options.pop("config", None)
    options["explain"] = ExplainConfig(**{f.name: options.pop(f.name) for f in fields(ExplainConfig)})
    return options


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run; user errors become one line and exit 1."""
    from argparse import ArgumentError

    try:
        return run(**parse(argv))
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
