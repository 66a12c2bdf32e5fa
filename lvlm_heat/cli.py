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
from contextlib import nullcontext
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Literal

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
    resume: Literal["auto", "force"] = "auto",
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
        resume: Re-running into a folder skips its finished pairs. ``auto``: only when the folder was
            made by the same model and settings (its ``run.json``), else the run is refused; ``force``:
            whatever made it.

    Returns:
        The summary (on the process of rank 0).
    """
    from tqdm.auto import tqdm

    from lvlm_heat.adapters import check_model, resolve_device, resolve_dtype
    from lvlm_heat.data import Pair, load_image, read_dataset
    from lvlm_heat.dataset_run import run_dataset
    from lvlm_heat.demo import DEMO_MODELS
    from lvlm_heat.reporting.console import describe, quiet_libraries, summary_line
    from lvlm_heat.reporting.run_folder import (
        RUN_DIR_ENV,
        RunLock,
        check_identity,
        launching_process,
        prepare_run_dir,
        run_dir,
    )

    quiet_libraries()
    explain = explain or ExplainConfig()
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
    accelerator = trainer.accelerator
    if trainer.devices in (1, "1") and accelerator == "auto":  # one process: --device says where
        accelerator = "gpu" if resolve_device(device).type == "cuda" else "cpu"
    dtype = resolve_dtype(precision, torch_device(accelerator))
    identity = run_identity(model, adapter, dtype, explain, data)
    folder = run_dir(output_dir, logs_root)
    launching = launching_process()  # the processes it starts share its folder, lock and identity check
    if launching:
        prepare_run_dir(folder)
    with RunLock(folder) if launching else nullcontext():
        if launching:
            check_identity(folder, identity, force=resume == "force")
        load = dict(model=checkpoint, precision=precision, adapter=adapter, gradient_checkpointing=gradient_checkpointing)
        print(f"model {model}: {len(pairs)} pair(s); outputs in {folder}", flush=True)
        os.environ[RUN_DIR_ENV] = str(folder)
        try:
            summary = run_dataset(pairs, load, explain, folder, replace(trainer, accelerator=accelerator),
                                  multiple_choice=data.multiple_choice, progress=progress,
                                  report=lambda record: tqdm.write(describe(record, folder)))
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        if summary is not None:  # rank 0, every pair of the folder finished or resumed: the page of them all
            from lvlm_heat.reporting.report import write_report

            report_path = write_report(folder)
    if summary is not None:
        print(summary_line(summary, folder), flush=True)
        print(f"report: {report_path}", flush=True)
    return summary


def torch_device(accelerator: str):
    """The device type a dataset run's processes use, for the weights' dtype."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def run_identity(model: str, adapter: str | None, dtype, explain: ExplainConfig, data: DataConfig) -> dict[str, Any]:
    """What makes a run's results what they are: recorded in ``run.json``, compared on resume.

    ``model`` is ``--model`` as given: a demo model's name, a hub id or a folder (recorded as its
    absolute path). The batch size, devices and progress bars change nothing in the results and are
    left out.
    """
    from importlib.metadata import PackageNotFoundError, version

    from lvlm_heat.demo import DEMO_MODELS

    try:
        package = version("lvlm_heat")
    except PackageNotFoundError:
        package = "unknown"
    local = Path(model)
    settings = asdict(explain)
    settings["optim"].pop("batch_size")
    return {
        "lvlm_heat": package,
        "model": model if model in DEMO_MODELS or not local.exists() else str(local.resolve()),
        "adapter": adapter,
        "dtype": str(dtype).removeprefix("torch."),
        "settings": settings,
        "prompt": {"multiple_choice": data.multiple_choice, "explain_reference": data.explain_reference},
    }


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


PAIRS_FAILED = 3
"""Exit status of ``train.py`` when the run finished but some pairs failed (their reasons are in the summary)."""
DEBUG_ENV = "LVLM_HEAT_DEBUG"
"""Set to 1 to see the full traceback of an error instead of its one-line message."""


def main(argv: list[str] | None = None, function=run, program: str = "python train.py") -> Any:
    """Parse ``argv`` (default ``sys.argv[1:]``) for ``function`` (default :func:`run`) and call it.

    A user error (bad flag or value, missing file, unknown or unloadable model, unusable output
    folder) becomes one line on stderr and exit status 2 (arguments) or 1 (everything else); with
    ``LVLM_HEAT_DEBUG=1`` the full traceback is shown instead. The other entry points
    (``python -m lvlm_heat.benchmark``, ``python -m lvlm_heat.sanity``) come through here too.

    Returns:
        What ``function`` returns: for :func:`run`, the summary (on the process of rank 0).
    """
    from argparse import ArgumentError

    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return function(**parse(argv, function))
    except (ArgumentError, LvlmHeatError, ValueError) as err:
        if debug:
            raise
        status = 1 if isinstance(err, LvlmHeatError) else 2
        message = " ".join(str(err).split()) if isinstance(err, ArgumentError) else str(err).splitlines()[0]
        hint = f" (see {program} --help)" if isinstance(err, ArgumentError) else ""
        print(f"error: {message}{hint}", file=sys.stderr)
        raise SystemExit(status) from None


def exit_status(summary: dict[str, Any] | None) -> int:
    """``train.py``'s exit status for a finished run: 0, or :data:`PAIRS_FAILED` when any pair failed."""
    return PAIRS_FAILED if summary and summary.get("failed") else 0
