"""Every setting of an explanation, in one schema.

The command line (:mod:`lvlm_heat.cli`), the Python API and the benchmark all take these
dataclasses, so each default is written once. Field docstrings are the ``--help`` text.

- :class:`ExplainConfig`: one explanation (baseline, answer length, stability threshold),
  holding :class:`OptimConfig` (the mask optimisation) and :class:`SelectionConfig` (which
  answer tokens are explained);
- :class:`DataConfig`: where a dataset's pairs come from;
- :class:`TrainerConfig`: how a dataset run is spread over processes.

This module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BaselineKind = Literal["blur", "blur_table", "black", "noise"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Rule = Literal["evidence", "llr", "all", "words"]
Maps = Literal["joint", "per_word"]
Format = Literal["auto", "jsonl", "json", "csv", "cvbench", "mmvp", "mmstar", "llava_bench"]


@dataclass
class OptimConfig:
    """Mask optimisation (METHOD.md sections 4-6). Defaults: the authors' quick start, relative step."""

    iterations: int = 5
    """Optimisation iterations (steps of the mask)."""
    ig_iter: int = 10
    """Points ``n`` of the integrated-gradient path per iteration."""
    mask_size: int = 32
    """Mask cells on the long side of the original image."""
    masks: int = 1
    """1: one mask in both games (METHOD.md section 5); 2: the iGOS++ variant, a deletion mask ``D`` and an
    insertion mask ``N``, loss ``L_del(D) + L_del(D N) - L_ins(N) - L_ins(D N)``, saliency from ``D N``
    (twice the composites per iteration)."""
    l1: float = 1.0
    """Weight of the sparsity term ``mean(|1 - M|)``."""
    l2: float = 0.1
    """Weight of the GNC term ``exp(-gamma i) sum((1 - M)^2)``."""
    l3: float = 10.0
    """Weight of the bilateral total variation."""
    gamma: float = 1.0
    """Decay rate of the GNC weight."""
    momentum: float = 5.0
    """Nesterov momentum constant ``m`` in ``i / (i + m)``."""
    step_size: float = 0.3
    """Relative step: the first iteration moves the most salient cell by this much."""
    lr: float | None = None
    """Absolute step size (the paper's 10); overrides ``step_size`` when set."""
    relative_weights: bool = True
    """Express ``L_del - L_ins`` in units of its largest gradient cell (that of the first iteration,
    unless a later one is larger), so the regulariser weights mean the same for every model;
    ``false`` uses the raw log-probabilities (the paper)."""
    noise: float = 0.2
    """Std of the Gaussian noise added to composites while optimising (normalised pixel units)."""
    tv_sigma: float = 0.01
    """Bandwidth of the bilateral TV's edge weights."""
    batch_size: int | Literal["auto"] = 16
    """Composites per forward pass; ``auto``: the largest that fits on the GPU, probed once per run
    (16 on the CPU)."""
    curve_steps: int = 50
    """Steps ``K`` of the deletion and insertion curves."""
    seed: int = 0
    """Seed of the composite noise."""
    insertion_weight: float = 1.0
    """Weight of the insertion game in the loss, ``L_del - w L_ins`` (METHOD.md: 1); 0 plays the deletion
    game alone and evaluates half the composites."""
    warm_start: float = 0.5
    """Depth of the mask's starting dip where a sweep of regions found the evidence (each cell's mean drop
    of the explained tokens over the regions covering it, scaled to [0, 1] and squared): the mask starts at
    ``1 - warm_start x prior``; 0 starts at 1 everywhere (METHOD.md). Where no region of the sweep costs
    a whole nat (an object larger than its regions), the selection's half-side sweep places the dip."""
    warm_windows: int = 7
    """The warm start's sweep: ``warm_windows x warm_windows`` overlapping regions, each a quarter of the
    image's side, replaced by the baseline one at a time (``warm_windows ** 2`` forward passes, no
    gradients; the half-side sweep's 9 more only when needed and not already run by the selection)."""

    def __post_init__(self) -> None:
        for name in ("iterations", "ig_iter", "mask_size", "batch_size", "warm_windows"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1) and (name, value) != ("batch_size", "auto"):
                raise ValueError(f"optim.{name} must be at least 1{' (or auto)' * (name == 'batch_size')}, got {value!r}")
        if self.masks not in (1, 2):
            raise ValueError(f"optim.masks is 1 or 2, got {self.masks}")
        if self.curve_steps < 2:  # one step goes straight from the image to the baseline: no curve to rank by
            raise ValueError(f"optim.curve_steps must be at least 2, got {self.curve_steps}")
        for name in ("l1", "l2", "l3", "gamma", "momentum", "noise", "insertion_weight", "warm_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must be non-negative, got {getattr(self, name)}")
        if self.warm_start > 1:
            raise ValueError(f"optim.warm_start is a depth in [0, 1], got {self.warm_start}")
        if self.step_size <= 0 or (self.lr is not None and self.lr <= 0) or self.tv_sigma <= 0:
            raise ValueError("optim.step_size, optim.lr and optim.tv_sigma must be positive")


@dataclass
class SelectionConfig:
    """How the answer tokens to explain are chosen (METHOD.md section 2)."""

    rule: Rule = "evidence"
    """``evidence``: content tokens whose log-probability drops by more than ``alpha`` when the whole
    image is replaced by the baseline (the LLR) or when one region is (a coarse sweep of
    ``windows x windows`` regions); ``llr``: the paper's rule, the LLR alone; ``all``: every
    non-special answer token; ``words``: the tokens of ``words``."""
    alpha: float = 1.0
    """Threshold (natural log) of the ``evidence`` and ``llr`` rules."""
    windows: int = 3
    """The ``evidence`` rule's sweep: ``windows x windows`` overlapping regions, each half the image's
    side, replaced by the baseline one at a time (``windows ** 2`` forward passes)."""
    words: list[str] = field(default_factory=list)
    """Words of the answer to explain, for the ``words`` rule (e.g. ``[red]``)."""


@dataclass
class ExplainConfig:
    """Everything that shapes one explanation, besides the model."""

    baseline: BaselineKind = "blur"
    """Reference image B: ``blur`` (default; kernel ``max(101, 0.8 x long side)`` px), ``blur_table`` (the
    paper's kernel table by width, METHOD.md section 1), ``black`` or ``noise``."""
    max_new_tokens: int = 32
    """Length limit of the generated answer."""
    min_gap: float = 0.05
    """Flag pairs whose ``p(I) - p(B)`` is below this: their normalised curves are unstable, and
    flagged pairs are left out of the mean AUCs."""
    curve_margin: float = 0.1
    """Flag pairs whose normalised deletion or insertion curve leaves ``[0, 1]`` by more than this: the
    mask found a perturbation that changes the answer more than removing the evidence does, so the
    AUCs do not mean what they usually mean."""
    maps: Maps = "joint"
    """``joint``: one map of all selected tokens (the paper); ``per_word``: also one map per selected word
    (a word = its selected sub-word tokens), optimised together with the joint map in the same run (each
    extra word adds the joint map's cost again)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Mask optimisation settings."""
    select: SelectionConfig = field(default_factory=SelectionConfig)
    """Which answer tokens are explained."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.maps == "per_word" and self.optim.masks != 1:
            raise ValueError("maps per_word takes one mask per word: use it with optim.masks 1")


@dataclass
class DataConfig:
    """Where the pairs come from."""

    path: Path | None = None
    """Dataset file (or benchmark folder); default: the shipped demo pairs."""
    image_root: Path | None = None
    """Folder image paths are relative to; default: the dataset file's folder."""
    format: Format = "auto"
    """``auto`` (by extension, or the benchmark a folder holds), jsonl, json, csv, cvbench, mmvp, mmstar,
    llava_bench."""
    image_field: str = "image"
    question_field: str = "question"
    answer_field: str = "answer"
    """Optional: the dataset's reference answer, recorded and compared with the model's own answer."""
    explain_reference: bool = False
    """Explain the dataset's reference answer instead of the model's own."""
    id_field: str = "id"
    """Optional: the pair's id (default: the image file's stem); its output folder is the id's file-name-safe
    part, made unique."""
    bbox_field: str = "bbox"
    """Optional: ``[left, top, right, bottom]`` in pixels of the evidence, for plausibility metrics."""
    options_field: str = "options"
    """Optional: a list of answer options (multiple choice)."""
    multiple_choice: bool = False
    """List the options in the prompt and ask for the letter of the answer."""
    limit: int | None = None
    """Explain only the first ``limit`` pairs."""

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"data.limit must be at least 1, got {self.limit}")


@dataclass
class TrainerConfig:
    """How the dataset is spread over processes (Lightning ``Trainer`` arguments)."""

    accelerator: str = "auto"
    """``auto``, ``cpu``, ``gpu``."""
    devices: int | str = 1
    """Processes per node (one per GPU): ``8`` splits the dataset over 8 GPUs."""
    strategy: str = "auto"
    """``auto`` (``ddp`` when devices > 1), ``ddp``; ``ddp_spawn`` is not supported (models do not pickle)."""
    num_nodes: int = 1
    """Nodes of a multi-node run (``torchrun`` / SLURM set the rest)."""
