"""Every setting of lvlm_heat, in one schema.

Every entry point (``lvlm-heat explain`` / ``python train.py``, ``sanity``, ``benchmark``, the Python API)
takes these dataclasses, so each default and each check is written once. Field docstrings are the
``--help`` text.

- :class:`ModelConfig`: which model, loaded how;
- :class:`ExplainConfig`: one explanation, holding :class:`SelectionConfig` (which answer tokens are
  explained), :class:`WarmStartConfig` (where the mask starts), :class:`OptimConfig` (the mask
  optimisation), :class:`RefineConfig` (its optional fine stage), and the other explainers' settings,
  :class:`OcclusionConfig` and :class:`GradientConfig`;
- :class:`DataConfig`: where a dataset's pairs come from;
- :class:`TrainerConfig`: how a dataset run is spread over processes;
- :class:`SanityConfig`: what the sanity checks do besides explaining.

A value that cannot be right raises ``ValueError`` naming the flag; the command line turns it into
one line and exit status 2. This module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

BaselineKind = Literal["blur", "blur_table", "median", "black", "noise"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Rule = Literal["evidence", "llr", "all", "words"]
Maps = Literal["joint", "per_word"]
Format = Literal["auto", "jsonl", "json", "csv", "cvbench", "mmvp", "mmstar", "llava_bench"]
Fill = Literal["baseline", "flat", "median"]
METHODS = ("igos", "superpixel", "grid", "gradient")
"""The explainers ``--method`` chooses among (docs/method.md, 'Other explainers')."""
TITLES = {"igos": "optimised mask (igos)", "superpixel": "superpixel occlusion", "grid": "grid occlusion",
          "gradient": "gradient"}
"""Each explainer as tables and figures name it."""


def _at_least(prefix: str, owner: object, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ValueError(f"{prefix}{name} must be at least {minimum:g}, got {value!r}")


def _fraction(prefix: str, owner: object, *names: str, open_low: bool = False) -> None:
    for name in names:
        value = getattr(owner, name)
        if not (0 < value <= 1 if open_low else 0 <= value <= 1):
            raise ValueError(f"{prefix}{name} is a fraction in {'(0' if open_low else '[0'}, 1], got {value!r}")


@dataclass
class ModelConfig:
    """The model and how it is loaded."""

    model: str = "demo"
    """Hugging Face hub id, local folder saved with ``save_pretrained``, or a shipped demo model: ``demo``
    (LLaVA format), ``demo-qwen2-vl`` or ``demo-llava-l2`` (LLaVA reading the second-to-last vision layer)."""
    adapter: str | None = None
    """Adapter class for models the auto-detection does not know: an import path (``package.module.Class``),
    or ``cambrian`` / ``mgm`` for the research models run through their upstream packages."""
    precision: Precision = "auto"
    """Weights' dtype: ``auto`` (bf16, or fp16 where the GPU lacks bf16; fp32 on the CPU), fp32, bf16, fp16."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (one process; ``--trainer.devices`` spreads a dataset over several)."""
    gradient_checkpointing: bool = False
    """Recompute the model's activations in the backward pass: less memory on large models for about one
    extra forward pass."""

    @property
    def checkpoint(self) -> str:
        """What ``from_pretrained`` reads: the demo model's folder for a demo name, else ``model`` as given."""
        from lvlm_heat.demo import DEMO_MODELS

        return str(DEMO_MODELS.get(self.model, self.model))


@dataclass
class OptimConfig:
    """Mask optimisation. Defaults: the paper authors' quick start, with a step relative to the gradient."""

    iterations: int = 5
    """Optimisation iterations (steps of the mask)."""
    ig_iter: int = 10
    """Points ``n`` of the integrated-gradient path per iteration."""
    mask_size: int = 32
    """Mask cells on the long side of the original image."""
    masks: int = 1
    """1: one mask in both games; 2: the iGOS++ variant, a deletion mask ``D`` and an insertion mask ``N``,
    loss ``L_del(D) + L_del(D N) - L_ins(N) - L_ins(D N)``, saliency from ``D N`` (twice the composites)."""
    l1: float = 1.0
    """Weight of the sparsity term ``mean(|1 - M|)``."""
    l2: float = 0.1
    """Weight of the graduated non-convexity term ``exp(-gamma i) sum((1 - M)^2)``."""
    l3: float = 10.0
    """Weight of the bilateral total variation."""
    gamma: float = 1.0
    """Decay rate of the graduated non-convexity weight."""
    momentum: float = 5.0
    """Nesterov momentum constant ``m`` in ``i / (i + m)``."""
    step_size: float = 0.3
    """Relative step: the first iteration moves the most salient cell by this much."""
    lr: float | None = None
    """Absolute step size (the paper's 10); overrides ``step_size`` when set."""
    relative_weights: bool = True
    """Express ``L_del - L_ins`` in units of its largest gradient cell (that of the first iteration, unless a
    later one is larger), so the regulariser weights mean the same for every model; ``false`` uses the raw
    log-probabilities (the paper)."""
    noise: float = 0.2
    """Std of the Gaussian noise added to composites while optimising (normalised pixel units)."""
    tv_sigma: float = 0.01
    """Bandwidth of the bilateral total variation's edge weights."""
    batch_size: int | Literal["auto"] = 16
    """Composites per forward pass; ``auto``: the largest that fits on the GPU, probed once per run (16 on the
    CPU)."""
    curve_steps: int = 50
    """Steps ``K`` of the deletion and insertion curves."""
    seed: int = 0
    """Seed of the composite noise (and of the ``noise`` baseline)."""
    insertion_weight: float = 1.0
    """Weight of the insertion game in the loss, ``L_del - w L_ins`` (the method: 1); 0 plays the deletion
    game alone and evaluates half the composites."""

    def __post_init__(self) -> None:
        if self.batch_size != "auto":
            _at_least("optim.", self, 1, "batch_size")
        _at_least("optim.", self, 1, "iterations", "ig_iter", "mask_size")
        _at_least("optim.", self, 2, "curve_steps")  # one step goes from the image to the baseline: no ranking
        _at_least("optim.", self, 0, "l1", "l2", "l3", "gamma", "momentum", "noise", "insertion_weight")
        if self.masks not in (1, 2):
            raise ValueError(f"optim.masks is 1 or 2, got {self.masks!r}")
        if self.step_size <= 0 or (self.lr is not None and self.lr <= 0) or self.tv_sigma <= 0:
            raise ValueError("optim.step_size, optim.lr and optim.tv_sigma must be positive")


@dataclass
class WarmStartConfig:
    """Where the mask starts: dipped where removing a region of the image costs the explained tokens.

    A sweep replaces square regions of the image by the baseline, one at a time, and records how much
    each costs the explained tokens (nats). Each cell's mean cost over the regions covering it, min-max
    scaled and raised to ``power``, is the sweep's map; the mask starts at ``1 - depth x map``. A sweep is
    trusted by ``min(1, largest cost / trust)``; the rest of the weight goes to the coarse ``fallback``
    sweep (each cell's largest cost over its regions), which runs only when some explained group trusts
    the fine sweep less than fully (an object larger than the fine regions, that none of them holds whole).
    """

    depth: float = 0.5
    """Depth of the dip, in [0, 1]; 0 starts the mask at 1 everywhere (the paper's start)."""
    windows: int = 7
    """The fine sweep: ``windows x windows`` overlapping regions (``windows ** 2`` forward passes, no gradients)."""
    side: float = 0.25
    """Side of a fine region, as a fraction of the image's side."""
    power: float = 2.0
    """Sharpness of each sweep's map: 2 keeps its order and narrows the halo around the peak; 1 takes the costs
    as they are."""
    trust: float = 1.0
    """A region's cost (nats) at which its sweep is trusted fully; smaller largest costs are trusted in proportion."""
    fallback: bool = True
    """Run the coarse sweep where the fine one is not trusted fully."""
    fallback_windows: int = 3
    """The coarse sweep: ``fallback_windows x fallback_windows`` regions (reused when the ``evidence`` selection
    already ran the same sweep)."""
    fallback_side: float = 0.5
    """Side of a coarse region, as a fraction of the image's side."""

    def __post_init__(self) -> None:
        _fraction("warm_start.", self, "depth")
        _fraction("warm_start.", self, "side", "fallback_side", open_low=True)
        _at_least("warm_start.", self, 1, "windows", "fallback_windows")
        if self.power <= 0 or self.trust <= 0:
            raise ValueError("warm_start.power and warm_start.trust must be positive")


@dataclass
class RefineConfig:
    """A fine stage after the mask optimisation (``igos``): one keep value per SLIC superpixel, started from the
    optimised mask's mean over each superpixel and played in the same deletion and insertion game with the L1 term
    (no TV), so the map follows the image's edges instead of spreading a halo around them (lvlm_heat/refine.py)."""

    stage: Literal["none", "superpixel"] = "superpixel"
    """``superpixel`` (the default): refine the optimised mask on superpixels; ``none``: the optimised mask is the
    map, as the method was published (a 32-cell mask with a halo around the evidence). Several images or a clip
    keep the optimised mask: the stage refines one image at a time."""
    iterations: int = 3
    """Iterations of the fine stage (``2 x ig_iter`` composites each); 0 only pools the coarse mask over the
    superpixels (no forward pass)."""
    segments: int = 100
    """About this many SLIC segments."""
    compactness: float = 10.0
    """SLIC's compactness: higher gives squarer segments, lower follows colour more closely."""
    step_size: float = 0.6
    """Relative step of the fine stage: each iteration moves the superpixel pushed hardest by this much."""
    l1: float = 0.2
    """Sparsity, per pixel, in units of the largest score gradient per pixel: a superpixel that matters less than
    this fraction of the most important one is pushed back to 1 (kept), which clears the coarse mask's halo."""
    noise: float = 0.0
    """Std of the Gaussian noise added to this stage's composites (normalised pixel units). 0, the default: the
    gradient per superpixel is then the same function of the mask from one iteration to the next, where the coarse
    stage's noise (``optim.noise``) flipped its sign on small evidence (EXPERIMENTS.md, "noise in the fine stage")."""
    coarse_share: float = 0.01
    """The map is the coarse saliency gated by the fine stage's, ``coarse x ((1 - s) refined + s)``: the fine stage
    chooses the superpixels, the coarse mask grades them; ``s`` is the share of the coarse saliency left where the
    fine stage cleared it, which orders that background for the curves."""

    def __post_init__(self) -> None:
        if self.stage not in ("none", "superpixel"):
            raise ValueError(f"refine.stage is none or superpixel, got {self.stage!r}")
        _at_least("refine.", self, 0, "iterations", "l1", "noise")
        _at_least("refine.", self, 2, "segments")
        _fraction("refine.", self, "coarse_share")
        if self.step_size <= 0 or self.compactness <= 0:
            raise ValueError("refine.step_size and refine.compactness must be positive")


@dataclass
class SelectionConfig:
    """Which answer tokens are explained."""

    rule: Rule = "evidence"
    """``evidence``: content tokens whose log-probability drops by more than ``alpha`` when the whole image is
    replaced by the baseline (the LLR) or when one region is (a sweep of ``windows x windows`` regions half the
    image's side); ``llr``: the paper's rule, the LLR alone; ``all``: every non-special answer token; ``words``:
    the tokens of ``words``."""
    alpha: float = 1.0
    """Threshold (natural log) of the ``evidence`` and ``llr`` rules."""
    windows: int = 3
    """The ``evidence`` rule's sweep: ``windows x windows`` overlapping regions, each half the image's side,
    replaced by the baseline one at a time (``windows ** 2`` forward passes; 0: no sweep, the LLR alone)."""
    words: list[str] = field(default_factory=list)
    """Words of the answer to explain, for the ``words`` rule (e.g. ``[red]``)."""

    def __post_init__(self) -> None:
        _at_least("select.", self, 0, "alpha", "windows")


@dataclass
class OcclusionConfig:
    """The occlusion explainers (``--method grid``, ``--method superpixel``): hide one region at a time, one
    forward pass per region, and call a region as important as the explained tokens' log-probability drops."""

    grid: int = 8
    """``--method grid``: ``grid x grid`` blocks over the image."""
    grid_fill: Fill = "baseline"
    """What a hidden grid block shows: ``baseline`` (the explainer's baseline B), ``flat`` (the image's mean
    colour) or ``median`` (its per-channel median colour)."""
    segments: int = 50
    """``--method superpixel``: about this many SLIC segments."""
    compactness: float = 10.0
    """SLIC's compactness: higher gives squarer segments, lower follows colour more closely."""
    superpixel_fill: Fill = "flat"
    """What a hidden superpixel shows: ``flat`` (the image's mean colour), ``median`` (its per-channel median
    colour) or ``baseline``."""

    def __post_init__(self) -> None:
        _at_least("occlusion.", self, 1, "grid")
        _at_least("occlusion.", self, 2, "segments")
        if self.compactness <= 0:
            raise ValueError(f"occlusion.compactness must be positive, got {self.compactness}")


@dataclass
class GradientConfig:
    """The gradient explainer (``--method gradient``): the gradient of the explained tokens' log-probability with
    respect to a keep-mask of fine cells, i.e. gradient x (image - baseline) summed over each cell; with
    ``steps > 1``, integrated gradients along the path from the baseline to the image."""

    steps: int = 16
    """Points of the path from the baseline to the image (1: the gradient at the image alone). ``steps``
    composites, one backward pass per batch: 16 fill one default batch."""
    cells: int = 64
    """Cells of the gradient map on the image's long side."""

    def __post_init__(self) -> None:
        _at_least("gradient.", self, 1, "steps", "cells")


@dataclass
class VideoConfig:
    """A clip asked about: its frames, each with a mask of its own, optimised together."""

    path: Path | None = None
    """The clip of a single pair (with ``--question``; ``--video clip.mp4`` on the command line): a video file
    (read by PyAV, ``pip install av``), an animated GIF / WebP / PNG, or a folder of frame images."""
    frames: int = 8
    """Frames sampled uniformly over the clip, first and last included (also for a dataset's ``video`` field)."""
    smoothness: float = 1.0
    """Weight of the temporal smoothness term ``mean((M_t+1 - M_t)^2)`` between consecutive frames' masks, beside
    the spatial TV (``optim.l3``)."""

    def __post_init__(self) -> None:
        _at_least("video.", self, 1, "frames")
        _at_least("video.", self, 0, "smoothness")


@dataclass
class ExplainConfig:
    """Everything that shapes one explanation, besides the model."""

    baseline: BaselineKind = "blur"
    """Reference image B: ``blur`` (default; kernel ``max(101, 0.8 x long side)`` px), ``blur_table`` (the paper's
    kernel table by width), ``median`` (the image's median colour everywhere), ``black`` or ``noise``."""
    max_new_tokens: int = 32
    """Length limit of the generated answer."""
    min_gap: float = 0.05
    """Flag pairs whose ``p(I) - p(B)`` is below this: their normalised curves are unstable, and flagged pairs
    are left out of the mean AUCs (0 flags only pairs whose baseline scores above the image)."""
    curve_margin: float = 0.1
    """Flag pairs whose normalised deletion or insertion curve leaves ``[0, 1]`` by more than this: the mask found
    a perturbation that changes the answer more than removing the evidence does, so the AUCs do not mean what
    they usually mean."""
    maps: Maps = "joint"
    """``joint``: one map of all selected tokens (the paper); ``per_word``: also one map per selected word (a
    word = its selected sub-word tokens), optimised together with the joint map in the same run (each extra word
    adds the joint map's cost again)."""
    select: SelectionConfig = field(default_factory=SelectionConfig)
    """Which answer tokens are explained."""
    method: str = "igos"
    """Explainer, or several comma-separated (``igos,superpixel,gradient``), run on the same answer and tokens:
    ``igos`` (the optimised mask), ``superpixel`` and ``grid`` (occlusion), ``gradient``. The first is the pair's
    main map; each other one's files go to a subfolder named after it."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    """Where the mask starts."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Mask optimisation settings."""
    refine: RefineConfig = field(default_factory=RefineConfig)
    """A fine stage after the mask optimisation (``--refine.stage superpixel``)."""
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    """The occlusion explainers' settings."""
    gradient: GradientConfig = field(default_factory=GradientConfig)
    """The gradient explainer's settings."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """A clip's frames and their temporal smoothness."""

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):  # a list, from the Python API or YAML
            self.method = ",".join(self.method)
        names = self.methods
        unknown = [name for name in names if name not in METHODS]
        if not names or unknown:
            raise ValueError(f"method is one or more of {', '.join(METHODS)} (comma-separated), got {self.method!r}")
        if len(set(names)) < len(names):
            raise ValueError(f"method names each explainer once, got {self.method!r}")
        _at_least("", self, 1, "max_new_tokens")
        _at_least("", self, 0, "min_gap", "curve_margin")
        if self.maps == "per_word" and self.optim.masks != 1:
            raise ValueError("maps per_word takes one mask per word: use it with optim.masks 1")

    @property
    def methods(self) -> list[str]:
        """The explainers of :attr:`method`, in order (the first gives the pair's main map)."""
        return [name.strip() for name in self.method.split(",") if name.strip()]


def result_settings(settings: dict) -> dict:
    """An :class:`ExplainConfig` as a dict (``asdict``, or a record's ``settings``) without what changes no result
    or names the input: the batch size, a single pair's clip, the fine stage's settings while it is off and the
    clip settings while they are the defaults (so records written before either existed still match).

    >>> result_settings({"baseline": "blur", "optim": {"iterations": 5, "batch_size": 16},
    ...                  "refine": {"stage": "none", "l1": 0.2}})
    {'baseline': 'blur', 'optim': {'iterations': 5}}
    """
    kept = {**settings, "optim": {k: v for k, v in settings.get("optim", {}).items() if k != "batch_size"}}
    if "video" in settings:
        kept["video"] = {k: v for k, v in settings["video"].items() if k != "path"}
        if kept["video"] == {k: v for k, v in asdict(VideoConfig()).items() if k != "path"}:
            kept.pop("video")
    if kept.get("refine", {}).get("stage", "none") == "none":
        kept.pop("refine", None)
    return kept


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
    """The image's path, or a list of paths for a question about several images."""
    video_field: str = "video"
    """Optional: a clip (video file, animated image or folder of frames) asked about instead of an image."""
    question_field: str = "question"
    answer_field: str = "answer"
    """Optional: the dataset's reference answer, recorded and compared with the model's own answer."""
    explain_reference: bool = False
    """Explain the dataset's reference answer instead of the model's own."""
    id_field: str = "id"
    """Optional: the pair's id (default: the image file's stem); its output folder is the id's file-name-safe part,
    made unique."""
    bbox_field: str = "bbox"
    """Optional: ``[left, top, right, bottom]`` in pixels of the evidence, for plausibility metrics."""
    options_field: str = "options"
    """Optional: a list of answer options (multiple choice)."""
    multiple_choice: bool = False
    """List the options in the prompt and ask for the letter of the answer."""
    limit: int | None = None
    """Explain only the first ``limit`` pairs."""

    def __post_init__(self) -> None:
        if self.limit is not None:
            _at_least("data.", self, 1, "limit")


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

    def __post_init__(self) -> None:
        devices = self.devices
        if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        if isinstance(devices, int) and devices < 1:
            raise ValueError(f"trainer.devices must be at least 1 (or auto), got {self.devices!r}")
        _at_least("trainer.", self, 1, "num_nodes")
        if self.strategy == "ddp_spawn":
            raise ValueError("trainer.strategy ddp_spawn pickles the model to its workers, which transformers models "
                             "do not support: use ddp")


@dataclass
class SanityConfig:
    """What the sanity checks do besides explaining (``--sanity.*``)."""

    stages: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0])
    """Cascade stages: the fraction of the model's blocks re-initialised from the top (at least the top one, the
    output head); ``[]`` with ``all_parameters false`` skips the randomisation."""
    all_parameters: bool = True
    """Add a last stage that re-initialises every parameter (embeddings, projector, norms too)."""
    rerun: bool = True
    """Re-explain with another noise seed on the unchanged model: the map's own stability."""
    random_answers: bool = True
    """Explain another pair's answer on each image (a shuffled answer when there is only one pair)."""
    top_fraction: float = 0.1
    """Top-k overlap of two maps: the share of one map's top cells (this fraction) in the other's."""
    seed: int = 0
    """Seed of the randomised weights and of shuffled answers."""

    def __post_init__(self) -> None:
        if any(not 0 <= f <= 1 for f in self.stages):
            raise ValueError(f"sanity.stages must be fractions in [0, 1], got {self.stages}")
        _fraction("sanity.", self, "top_fraction", open_low=True)
