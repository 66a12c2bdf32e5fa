"""One pair, end to end: answer, baseline, token selection, mask optimisation, curves, outputs."""

from __future__ import annotations

import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torch.utils.data import DataLoader

from lvlm_heat.adapters.base import Adapter
from lvlm_heat.baseline import BaselineKind, make_baseline
from lvlm_heat.callbacks import IterationProgress, SaliencyImageLogger
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.explainer import MaskExplainer, OptimConfig
from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.metrics.plausibility import box_mass, pointing_hit
from lvlm_heat.report import write_outputs
from lvlm_heat.selection import SelectionConfig, TokenScore, select_tokens

EXPLAINED, NOT_GROUNDED, FAILED = "explained", "not_grounded", "failed"


@dataclass
class ExplainConfig:
    """Everything that shapes one explanation, besides the model."""

    baseline: BaselineKind = "blur"
    """Reference image B: ``blur`` (default), ``black`` or ``noise``."""
    max_new_tokens: int = 32
    """Length limit of the generated answer."""
    min_gap: float = 0.05
    """Flag pairs whose ``p(I) - p(B)`` is below this: their normalised curves are unstable."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    select: SelectionConfig = field(default_factory=SelectionConfig)


@dataclass
class Explanation:
    """The result for one pair.

    Attributes:
        saliency: ``(H, W)`` float32 over the original image, higher = more important
            (``1 - M`` upsampled); ``None`` when no token was selected.
        tokens: Every answer token with its log-probabilities, LLR and selection.
        deletion, insertion: The curves of the final mask (``None`` when not explained).
        p_image, p_baseline: Mean probability of the selected tokens on I and on B.
        history: Per iteration, every loss term (as logged to TensorBoard).
        timings: Wall seconds of each phase: ``answer``, ``prepare`` (processor, baseline and
            LLR passes), ``optimise`` (all iterations), ``curves``.
    """

    pair_id: str
    question: str
    answer: str
    status: str
    tokens: list[TokenScore]
    saliency: np.ndarray | None = None
    mask: np.ndarray | None = None
    deletion: Curve | None = None
    insertion: Curve | None = None
    p_image: float = math.nan
    p_baseline: float = math.nan
    unstable: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    image_path: str | None = None
    bbox: tuple[float, float, float, float] | None = None

    @property
    def pointing_hit(self) -> bool | None:
        """Whether the saliency peak is in ``bbox`` (``None`` without a box or a map)."""
        if self.bbox is None or self.saliency is None:
            return None
        return pointing_hit(torch.from_numpy(self.saliency), self.bbox)

    @property
    def box_mass(self) -> float | None:
        """Share of the saliency inside ``bbox`` (``None`` without a box or a map)."""
        if self.bbox is None or self.saliency is None:
            return None
        return box_mass(torch.from_numpy(self.saliency), self.bbox)

    @property
    def deletion_auc(self) -> float:
        return self.deletion.auc if self.deletion else math.nan

    @property
    def insertion_auc(self) -> float:
        return self.insertion.auc if self.insertion else math.nan

    @property
    def selected_tokens(self) -> list[str]:
        return [t.text.strip() for t in self.tokens if t.selected]

    def to_dict(self) -> dict[str, Any]:
        def curve(c: Curve | None) -> dict[str, list[float]] | None:
            if c is None:
                return None
            return {"fractions": c.fractions.tolist(), "probs": c.probs.tolist(), "normalized": c.normalized.tolist()}

        return {
            "id": self.pair_id,
            "status": self.status,
            "image": self.image_path,
            "question": self.question,
            "answer": self.answer,
            "tokens": [
                {"index": t.index, "text": t.text, "llr": t.llr, "log_prob_image": t.log_prob_image,
                 "log_prob_baseline": t.log_prob_baseline, "special": t.special, "selected": t.selected}
                for t in self.tokens
            ],
            "selected_tokens": self.selected_tokens,
            "deletion_auc": None if math.isnan(self.deletion_auc) else self.deletion_auc,
            "insertion_auc": None if math.isnan(self.insertion_auc) else self.insertion_auc,
            "p_image": self.p_image,
            "p_baseline": self.p_baseline,
            "unstable_normalization": self.unstable,
            "bbox": list(self.bbox) if self.bbox else None,
            "pointing_hit": self.pointing_hit,
            "box_mass": self.box_mass,
            "curves": {"deletion": curve(self.deletion), "insertion": curve(self.insertion)},
            "history": self.history,
            "seconds": self.seconds,
            "timings": self.timings,
            "model": self.model,
            "settings": self.settings,
        }


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


def _trainer(adapter: Adapter, output_dir: Path | None, pair_id: str, image: Image.Image, progress: bool = False,
             **overrides) -> Trainer:
    quiet_libraries()
    device = adapter.device
    logger: Any = False
    if output_dir is not None:
        logger = TensorBoardLogger(save_dir=str(output_dir), name=pair_id, version="", default_hp_metric=False)
    settings = dict(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        max_epochs=1,
        logger=logger,
        callbacks=[SaliencyImageLogger(image), *([IterationProgress()] if progress else [])],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        precision="32-true",
    )
    settings.update(overrides)
    return Trainer(**settings)


def explain_pair(
    adapter: Adapter,
    image: Image.Image,
    question: str,
    *,
    answer: str | None = None,
    config: ExplainConfig | None = None,
    pair_id: str = "pair",
    output_dir: Path | None = None,
    image_path: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    progress: bool = False,
    trainer_overrides: dict[str, Any] | None = None,
) -> Explanation:
    """Explain one image-question pair with ``adapter``'s model.

    Args:
        adapter: A loaded model (see :func:`lvlm_heat.adapters.load_adapter`).
        image: The image, any size.
        question: The question.
        answer: Explain this answer instead of the model's greedy one.
        config: Settings; defaults from METHOD.md.
        pair_id: Folder name of the outputs and TensorBoard run.
        output_dir: Where ``<pair_id>/`` is written; nothing is written when ``None``.
        image_path: Recorded in ``result.json``.
        bbox: ``(left, top, right, bottom)`` of the evidence, for the plausibility scores.
        progress: Show a bar over the iterations.
        trainer_overrides: Extra ``lightning.Trainer`` arguments.
    """
    config = config or ExplainConfig()
    if not question or not question.strip():
        raise LvlmHeatError("the question is empty: give a question about the image")
    start = time.perf_counter()
    image = image.convert("RGB")
    baseline = make_baseline(image, config.baseline, seed=config.optim.seed)
    clock = _Clock()
    if answer is not None and answer.strip():
        answer_ids = adapter.encode_answer(answer)
    else:
        answer_ids = adapter.generate(image, question, config.max_new_tokens)
    clock.lap("answer")
    texts, special = adapter.token_texts(answer_ids)
    answer_text = "".join(t for t, s in zip(texts, special) if not s).strip()
    settings = {"baseline": config.baseline, "max_new_tokens": config.max_new_tokens, "min_gap": config.min_gap,
                "optim": asdict(config.optim), "select": asdict(config.select)}
    result = Explanation(pair_id, question, answer_text, NOT_GROUNDED, [], model=adapter.name, settings=settings,
                         image_path=image_path, bbox=bbox)
    if answer_ids.numel() == 0:
        result.seconds = time.perf_counter() - start
        if output_dir is not None:
            write_outputs(output_dir / pair_id, image, result)
        return result

    prepared = adapter.prepare(image, baseline, question, answer_ids)
    with torch.no_grad():
        both = {k: torch.stack([prepared.image[k], prepared.baseline[k]]) for k in prepared.image}
        log_probs = adapter.answer_log_probs(prepared, both).cpu()
    result.tokens = select_tokens(
        [TokenScore(k, texts[k], float(log_probs[0, k]), float(log_probs[1, k]), special[k]) for k in range(len(texts))],
        config.select,
    )
    clock.lap("prepare")
    selected = torch.tensor([t.selected for t in result.tokens])
    if selected.any():
        result.status = EXPLAINED
        result.p_image = float(log_probs[0, selected].exp().mean())
        result.p_baseline = float(log_probs[1, selected].exp().mean())
        result.unstable = result.p_image - result.p_baseline < config.min_gap
        module = MaskExplainer(adapter, prepared, selected, config.optim, result.p_image, result.p_baseline)
        with _as_rank_zero():
            trainer = _trainer(adapter, output_dir, pair_id, image, progress, **(trainer_overrides or {}))
            trainer.fit(module, train_dataloaders=DataLoader(range(config.optim.iterations), batch_size=None))
            clock.lap("optimise")
            trainer.test(module, dataloaders=DataLoader([0], batch_size=None), verbose=False)
            clock.lap("curves")
        mask = module.mask.detach().float()
        result.mask = mask[0, 0].cpu().numpy()
        result.saliency = (1 - upsample_to_image(mask, prepared.image_size))[0, 0].cpu().numpy().astype(np.float32)
        result.deletion, result.insertion, result.history = module.deletion, module.insertion, module.history
    result.seconds = time.perf_counter() - start
    result.timings = clock.laps
    if output_dir is not None:
        write_outputs(output_dir / pair_id, image, result)
    return result


@contextmanager
def _as_rank_zero():
    """Each pair is one process's own work: its TensorBoard events must be written whatever the
    process's rank (Lightning's rank-zero guard would silence ranks > 0), and the outer run's rank
    must be restored afterwards (a single-device trainer resets it to 0)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    saved = getattr(rank_zero_only, "rank", 0)
    rank_zero_only.rank = 0
    try:
        yield
    finally:
        rank_zero_only.rank = saved


class _Clock:
    """Wall time of consecutive phases (CUDA work finished before each reading)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now
