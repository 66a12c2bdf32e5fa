"""The command line: ``lvlm-heat COMMAND [--config x.yaml] [--option value ...]``; ``python train.py`` is
``lvlm-heat explain``.

Each command is a typed function and its signature is its configuration: every parameter is a flag,
nested dataclasses become dotted flags (``--data.path``), and the fields of the two shared schemas,
:class:`~lvlm_heat.config.ModelConfig` (``--model``, ``--precision``, ...) and
:class:`~lvlm_heat.config.ExplainConfig` (``--baseline``, ``--optim.iterations``, ``--select.rule``, ...),
are flags of their own at the top level, the same in every command. A YAML file given with ``--config``
sets any of them. Errors a user can make are one line on stderr.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import typing
from contextlib import nullcontext
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Literal

from lvlm_heat.config import DataConfig, ExplainConfig, ModelConfig, TrainerConfig, result_settings
from lvlm_heat.errors import LvlmHeatError

FLAT = (ModelConfig, ExplainConfig)
"""Schemas whose fields are top-level flags (a parameter of one of these types is not a flag group of its own)."""
COMMANDS = {
    "explain": ("lvlm_heat.cli:explain", "explain image-question pairs: heatmaps, AUCs, report (= python train.py)"),
    "report": ("lvlm_heat.cli:report", "(re)write report.html of a run folder"),
    "sanity": ("lvlm_heat.sanity.runner:run_sanity", "randomisation checks and occlusion references on your data"),
    "benchmark": ("lvlm_heat.benchmark:benchmark", "time one pair: per phase, against bare model passes"),
    "demo": ("lvlm_heat.demo.evaluate:run_evaluation", "where the peaks land on grounded demo scenes"),
    "instruments": ("lvlm_heat.demo.instruments:run_instruments",
                    "where the peaks land on scenes built unlike the demo's, against each set's causal ceiling"),
}
PAIRS_FAILED = 3
"""Exit status of ``explain`` when the run finished but some pairs failed (their reasons are in the summary)."""
INTERRUPTED = 130
"""Exit status of ``explain`` stopped by Ctrl-C (its finished pairs are kept and summarised)."""
DEBUG_ENV = "LVLM_HEAT_DEBUG"
"""Set to 1 to see the full traceback of an error instead of its one-line message."""


def explain(
    model: ModelConfig = ModelConfig(),
    image: Path | list[Path] | None = None,
    question: str | None = None,
    answer: str | None = None,
    data: DataConfig = DataConfig(),
    output_dir: Path | None = None,
    logs_root: Path = Path("lightning_logs"),
    explain: ExplainConfig | None = None,
    trainer: TrainerConfig = TrainerConfig(),
    progress: bool = True,
    resume: Literal["auto", "force"] = "auto",
    threads: int | None = None,
) -> dict[str, Any] | None:
    """Explain where a vision-language model looks when it answers questions about images.

    With no arguments, explains the shipped demo pairs with the shipped demo model.

    Args:
        model: The model (on the command line, its fields are flags of their own: ``--model``, ``--adapter``,
            ``--precision``, ``--device``, ``--gradient_checkpointing``).
        image: Image of a single pair (with ``--question``); several for a question about several images
            (``--image a.png --image b.png``); otherwise ``--data`` is explained. ``--video clip.mp4`` (with
            ``--question``) asks about a clip instead (``--video.frames``).
        question: Question of a single pair.
        answer: Explain this answer instead of the model's own (greedy) answer (single pair).
        data: The dataset to explain when no ``--image`` is given (default: the demo pairs).
        output_dir: Where results go; default: a new ``version_N`` folder under ``logs_root``. Re-running into a
            folder skips the pairs already finished there.
        logs_root: Parent of the default run folders.
        explain: The explanation settings (on the command line, their fields are flags of their own:
            ``--baseline``, ``--max_new_tokens``, ``--min_gap``, ``--select.*``, ``--warm_start.*``, ``--optim.*``).
        trainer: Processes and devices of a dataset run (``--trainer.devices 8``).
        progress: Show progress bars.
        resume: Re-running into a folder skips its finished pairs. ``auto``: only when the folder was made by the
            same model and settings (its ``run.json``), else the run is refused; ``force``: whatever made it. A pair
            whose image (its bytes), question or given answer changed is explained again, and says so.
        threads: CPU threads of torch (default: torch's own, from ``OMP_NUM_THREADS`` or the machine's cores; on a
            busy machine 1 or 2 is often faster). Recorded in ``run.json``.

    Returns:
        The summary (on the process of rank 0). Ctrl-C keeps the finished pairs, writes their summary and report,
        and the same command resumes (exit status 130).
    """
    import torch
    from tqdm.auto import tqdm

    from lvlm_heat.adapters import check_model, resolve_device, resolve_dtype
    from lvlm_heat.data import read_dataset
    from lvlm_heat.dataset_run import reusable, run_dataset
    from lvlm_heat.reporting.console import describe, quiet_libraries, summary_line
    from lvlm_heat.reporting.report import write_report
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
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    clip = explain.video.path
    if image is not None and clip is not None:
        raise LvlmHeatError("give --image or --video, not both")
    given = image if clip is None else clip
    if (given is None) != (question is None):
        raise LvlmHeatError("give --image and --question together (or --video and --question; or neither, to explain "
                            "--data.path or the demo pairs)")
    if answer is not None and not answer.strip():
        raise ValueError("--answer is empty: give the answer to explain, or leave it out to explain the model's own")
    if given is not None:
        if not question.strip():
            raise LvlmHeatError("the question is empty: give a question about the image")
        pairs = [single_pair(image, clip, question, answer, explain.video.frames)]
    else:
        if answer is not None:
            raise LvlmHeatError("--answer goes with --image; a dataset gives answers in its answer field")
        pairs = read_dataset(data)
    check_model(model)
    accelerator = trainer.accelerator
    if trainer.devices in (1, "1") and accelerator == "auto":  # one process: --device says where
        accelerator = "gpu" if resolve_device(model.device).type == "cuda" else "cpu"
    dtype = resolve_dtype(model.precision, torch_device(accelerator))
    identity = run_identity(model, dtype, explain, data)
    folder = run_dir(output_dir, logs_root)
    launching = launching_process()  # the processes it starts share its folder, lock and identity check
    created = launching and not folder.exists()
    if launching:
        prepare_run_dir(folder)
    try:
        with RunLock(folder) if launching else nullcontext():
            if launching:
                check_identity(folder, identity, force=resume == "force", runtime={"threads": torch.get_num_threads()})
                done = sum(reusable(folder / p.folder, p, data.multiple_choice, lambda _: None, maps=False) is not None
                           for p in pairs)
            print(f"model {model.model}: {len(pairs)} pair(s); outputs in {folder}", flush=True)
            if launching and done:
                print(f"resuming: {done} of {len(pairs)} pair(s) done", flush=True)
            os.environ[RUN_DIR_ENV] = str(folder)
            try:
                summary = run_dataset(pairs, model, explain, folder, replace(trainer, accelerator=accelerator),
                                      multiple_choice=data.multiple_choice, progress=progress,
                                      report=lambda record: tqdm.write(describe(record, folder)))
            finally:
                os.environ.pop(RUN_DIR_ENV, None)
            if summary is not None:  # rank 0, every pair of the folder finished or resumed: the page of them all
                report_path = write_report(folder)
    except BaseException:
        if created and not any(folder.glob("*/result.json")):  # nothing ran: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if summary is not None:
        if summary["interrupted"]:
            progress_made = summary["interrupted"]
            print(f"interrupted after {progress_made['done']} of {progress_made['of']} pairs; the same command "
                  "resumes", flush=True)
        print(summary_line(summary, folder), flush=True)
        print(f"report: {report_path}", flush=True)
    return summary


def single_pair(image: Path | list[Path] | None, clip: Path | None, question: str, answer: str | None,
                frames: int):
    """The pair of ``--image`` (one or several) or ``--video``, its files checked before the model loads."""
    from lvlm_heat.data import Pair, load_image
    from lvlm_heat.data.video import read_video

    if clip is not None:
        read_video(clip, frames)  # fail before the model loads
        return Pair(Path(clip).stem, None, question, answer, video=Path(clip))
    images = [Path(p) for p in (image if isinstance(image, list) else [image])]
    if not images:
        raise LvlmHeatError("--image is an empty list: give one image or more")
    for path in images:
        load_image(path)
    name = images[0].stem if len(images) == 1 else "_".join(p.stem for p in images)[:80]
    return Pair(name, images[0], question, answer, extra_images=tuple(images[1:]))


def report(run_dir: Path) -> Path:
    """(Re)write ``report.html`` of a run folder from its files alone (after a resume, a run stopped part-way, or
    a newer version of the page).

    Args:
        run_dir: A run folder: the ``--output_dir`` of a run, or ``lightning_logs/version_N``.

    Returns:
        The page's path (printed).
    """
    from lvlm_heat.reporting.report import write_report

    path = write_report(run_dir)
    print(path, flush=True)
    return path


def torch_device(accelerator: str):
    """The device type a dataset run's processes use, for the weights' dtype."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def run_identity(model: ModelConfig, dtype, explain: ExplainConfig, data: DataConfig) -> dict[str, Any]:
    """What makes a run's results what they are: recorded in ``run.json``, compared on resume.

    ``model`` is recorded as given: a demo model's name, a hub id or a folder (as its absolute path). The batch
    size, devices and progress bars change nothing in the results and are left out.
    """
    from importlib.metadata import PackageNotFoundError, version

    from lvlm_heat.demo import DEMO_MODELS

    try:
        package = version("lvlm_heat")
    except PackageNotFoundError:
        package = "unknown"
    local = Path(model.model)
    settings = result_settings(asdict(explain))
    return {
        "lvlm_heat": package,
        "model": model.model if model.model in DEMO_MODELS or not local.exists() else str(local.resolve()),
        "adapter": model.adapter,
        "dtype": str(dtype).removeprefix("torch."),
        "settings": settings,
        "prompt": {"multiple_choice": data.multiple_choice, "explain_reference": data.explain_reference},
    }


# -- parsing -------------------------------------------------------------------------------------------------
def _flat_parameters(function) -> dict[str, type]:
    """The parameters of ``function`` whose type is one of :data:`FLAT`, by name."""
    hints = typing.get_type_hints(function)
    return {name: cls for name, hint in hints.items() for cls in FLAT
            if hint is cls or cls in typing.get_args(hint)}


def build_parser(function=explain, program: str = "python train.py"):
    """The parser of ``function`` (default :func:`explain`, i.e. ``train.py``): its parameters as flags (those
    without a default as positional arguments), and the fields of its :data:`FLAT` parameters as flags of their
    own at the top level."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog=program, description=function.__doc__.split("\n\n")[0], exit_on_error=False)
    parser.add_argument("--config", action="config", help="YAML file setting any of the options below.")
    flat = _flat_parameters(function)
    parser.add_function_arguments(function, skip=set(flat), as_group=False, as_positional=True)
    for cls in flat.values():
        parser.add_class_arguments(cls, nested_key=None)
    return parser


def shorthand(argv: list[str]) -> list[str]:
    """The command line with its two shorthands spelled out for the parser: a repeated ``--image`` builds a list
    (``--image a.png --image b.png``), and ``--video PATH`` is ``--video.path PATH``.

    >>> shorthand(["--image", "a.png", "--image=b.png", "--video", "c.mp4"])
    ['--image+', 'a.png', '--image+=b.png', '--video.path', 'c.mp4']
    >>> shorthand(["--image", "a.png", "--video", "settings.yaml"])
    ['--image', 'a.png', '--video', 'settings.yaml']
    """
    out = list(argv)
    images = [k for k, arg in enumerate(out) if arg == "--image" or arg.startswith("--image=")]
    if len(images) > 1:
        for k in images:
            out[k] = out[k].replace("--image", "--image+", 1)
    for k, arg in enumerate(out):
        value = out[k + 1] if arg == "--video" and k + 1 < len(out) else arg.partition("=")[2]
        if (arg == "--video" or arg.startswith("--video=")) and not value.endswith((".yaml", ".yml", "}")):
            out[k] = arg.replace("--video", "--video.path", 1)
    return out


def parse(argv: list[str] | None = None, function=explain, program: str = "python train.py") -> dict[str, Any]:
    """Keyword arguments of ``function`` (default :func:`explain`) for the command-line arguments ``argv``
    (:func:`shorthand` first)."""
    parser = build_parser(function, program)
    argv = shorthand(list(sys.argv[1:] if argv is None else argv))
    options = vars(parser.instantiate(parser.parse_args(argv)))
    options.pop("config", None)
    for name, cls in _flat_parameters(function).items():
        options[name] = cls(**{f.name: options.pop(f.name) for f in fields(cls)})
    return options


def main(argv: list[str] | None = None, function=explain, program: str = "python train.py") -> Any:
    """Parse ``argv`` (default ``sys.argv[1:]``) for ``function`` (default :func:`explain`) and call it.

    A user error (bad flag or value, missing file, unknown or unloadable model, unusable output folder) becomes
    one line on stderr and exit status 2 (arguments) or 1 (everything else); with ``LVLM_HEAT_DEBUG=1`` the full
    traceback is shown instead.

    Returns:
        What ``function`` returns: for :func:`explain`, the summary (on the process of rank 0).
    """
    from argparse import ArgumentError

    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return function(**parse(argv, function, program))
    except (ArgumentError, LvlmHeatError, ValueError) as err:
        if debug:
            raise
        status = 1 if isinstance(err, LvlmHeatError) else 2
        message = argument_message(str(err)) if isinstance(err, ArgumentError) else str(err).splitlines()[0]
        hint = f" (see {program} --help)" if isinstance(err, ArgumentError) else ""
        print(f"error: {message}{hint}", file=sys.stderr)
        raise SystemExit(status) from None


TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a text",
              "pathlib.Path": "a path", "NoneType": "null"}


def argument_message(text: str) -> str:
    """One line for the parser's error ``text``: ``key: what it takes, got 'value'`` for a wrong value.

    >>> argument_message('Parser key "optim.batch_size":\\n  Does not validate against any of the Union subtypes\\n'
    ...                  "  Subtypes: [<class 'int'>, typing.Literal['auto']]\\n  Errors:\\n"
    ...                  "    - Expected a <class 'int'>\\n    - Expected a typing.Literal['auto']\\n"
    ...                  "  Given value type: <class 'str'>\\n  Given value: abc")
    "optim.batch_size: an integer or 'auto', got 'abc'"
    >>> argument_message('Parser key "select.rule":\\n'
    ...                  "  Expected a typing.Literal['evidence', 'llr']. Got value: x")
    "select.rule: 'evidence' or 'llr', got 'x'"
    >>> argument_message("unrecognized arguments: --bogus 1")
    'unrecognized arguments: --bogus 1'
    """
    key = re.match(r'Parser key "([^"]+)":', text)
    value = re.search(r"(?:Given|Got) value: (.*)$", text)
    expected = re.findall(r"Expected a (<class '([\w.]+)'>|typing\.Literal\[(.*?)\])", text)
    if not (key and value and expected):
        return " ".join(text.split())
    kinds = []
    for _, name, literal in expected:
        options = re.findall(r"'[^']*'", literal)
        if name:
            kinds.append(TYPE_NAMES.get(name, f"a {name}"))
        else:
            kinds.append(" or ".join(options) if len(options) < 3 else f"one of {', '.join(options)}")
    return f"{key.group(1)}: {' or '.join(dict.fromkeys(kinds))}, got {value.group(1).strip()!r}"


def command(name: str):
    """The function of the command ``name`` (:data:`COMMANDS`), imported on use."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    return getattr(importlib.import_module(module), attribute)


def console(argv: list[str] | None = None) -> int:
    """``lvlm-heat COMMAND ...``: run one command (:data:`COMMANDS`) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
        usage = "usage: lvlm-heat COMMAND [--help] [options]\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}\n\n{usage}", file=sys.stderr)
            return 2
        print(usage)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    result = main(rest, command(name), f"lvlm-heat {name}")
    return exit_status(result) if name == "explain" else 0


def exit_status(summary: dict[str, Any] | None) -> int:
    """``explain``'s exit status for a finished run: 0, :data:`PAIRS_FAILED` when any pair failed, or
    :data:`INTERRUPTED` after Ctrl-C."""
    if summary and summary.get("interrupted"):
        return INTERRUPTED
    return PAIRS_FAILED if summary and summary.get("failed") else 0
