"""One pair, end to end: answer, baseline, token selection, mask optimisation, curves.

:func:`explain_pair` is the whole method for one image-question pair. The mask optimisation
itself is a Lightning run of :class:`~lvlm_heat.explainer.MaskExplainer` on a single-device
trainer of its own: ``fit`` over the iterations, ``test`` for the curves. Writing the pair's
files is the caller's choice (:func:`lvlm_heat.reporting.outputs.write_pair_outputs`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader

from lvlm_heat.adapters.base import Adapter, blend
from lvlm_heat.baseline import make_baseline
from lvlm_heat.config import ExplainConfig
from lvlm_heat.data.answers import answer_matches
from lvlm_heat.data.ids import safe_name
from lvlm_heat.data.pairs import Box
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.explainer import MaskExplainer, in_chunks
from lvlm_heat.geometry import mask_grid_shape, upsample_to_image
from lvlm_heat.record import EXPLAINED, NOT_GROUNDED, Explanation, TokenScore, WordMap
from lvlm_heat.reporting.console import quiet_libraries
from lvlm_heat.reporting.progress import IterationProgress
from lvlm_heat.reporting.tensorboard import SaliencyImageLogger
from lvlm_heat.selection import select_tokens, selected_words, sweep_masks, sweep_prior


def explain_pair(
    adapter: Adapter,
    image: Image.Image,
    question: str,
    *,
    answer: str | None = None,
    config: ExplainConfig | None = None,
    pair_id: str = "pair",
    folder: str | None = None,
    log_dir: Path | None = None,
    image_path: str | None = None,
    image_notes: list[str] | None = None,
    bbox: Box | None = None,
    reference: str | None = None,
    options: tuple[str, ...] = (),
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
        pair_id: The pair's name, as the user gave it.
        folder: Its output folder name (default: the file-name-safe form of ``pair_id``).
        log_dir: TensorBoard events go to ``log_dir/<folder>/``; none are written when ``None``.
        image_path: Recorded in the result.
        image_notes: What opening the image file changed (recorded).
        bbox: ``(left, top, right, bottom)`` of the evidence, for the plausibility scores.
        reference: A reference answer, compared with the explained answer (recorded).
        options: The question's answer options, for comparing an option letter with ``reference``.
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
    settings = asdict(config)
    folder = folder or safe_name(pair_id)
    result = Explanation(pair_id, question, answer_text, NOT_GROUNDED, [], model=adapter.name, settings=settings,
                         image_path=image_path, bbox=bbox, folder=folder, reference=reference,
                         answer_match=answer_matches(answer_text, reference, options) if reference else None,
                         image_notes=list(image_notes or []), image=image)
    if answer_ids.numel() == 0:
        result.seconds = time.perf_counter() - start
        return result

    prepared = adapter.prepare(image, baseline, question, answer_ids)
    with torch.no_grad():
        both = {k: torch.stack([prepared.image[k], prepared.baseline[k]]) for k in prepared.image}
        log_probs = adapter.answer_log_probs(prepared, both).cpu()
    content = ~torch.tensor(special)
    no_image = adapter.text_only_log_probs(question, answer_ids)
    result.reliance = {
        "log_p_image": float(log_probs[0, content].sum()),
        "log_p_baseline": float(log_probs[1, content].sum()),
        "log_p_no_image": None if no_image is None else float(no_image[content].sum()),
    }
    local = coarse = None
    if config.select.rule == "evidence" and config.select.windows:
        coarse = _sweep(adapter, prepared, config, config.select.windows)
        local = coarse[1].min(0).values
    result.tokens = select_tokens(
        [TokenScore(k, texts[k], float(log_probs[0, k]), float(log_probs[1, k]), special[k],
                    log_prob_local=None if local is None else float(local[k])) for k in range(len(texts))],
        config.select,
    )
    clock.lap("prepare")
    selected = torch.tensor([t.selected for t in result.tokens])
    if selected.any():
        result.status = EXPLAINED
        result.p_image = float(log_probs[0, selected].exp().mean())
        result.p_baseline = float(log_probs[1, selected].exp().mean())
        result.unstable = result.p_image - result.p_baseline < config.min_gap
        words = selected_words(result.tokens) if config.maps == "per_word" else []
        # a word holding every selected token has the joint map; the others get a mask of their own
        own = [w for w in words if set(w[2]) != set(selected.nonzero().flatten().tolist())]
        rows = torch.zeros(len(own), len(selected), dtype=torch.bool)
        for row, (_, _, indices) in zip(rows, own):
            row[indices] = True
        word_probs = [(float(log_probs[0, row].exp().mean()), float(log_probs[1, row].exp().mean())) for row in rows]
        initial = None
        if config.optim.warm_start > 0:
            groups = torch.cat([selected[None], rows])
            initial = 1 - config.optim.warm_start * _warm_prior(adapter, prepared, config, log_probs[0], groups, coarse)
            clock.lap("prepare")  # forward passes without gradients, like the selection's
        module = MaskExplainer(adapter, prepared, selected, config.optim, result.p_image, result.p_baseline,
                               words=rows, word_probs=word_probs, initial=initial)
        with _as_rank_zero():
            images = SaliencyImageLogger(image, result.tokens, [f"{position}_{word}" for position, word, _ in own])
            trainer = _trainer(adapter, log_dir, folder, images, progress, **(trainer_overrides or {}))
            trainer.fit(module, train_dataloaders=DataLoader(range(config.optim.iterations), batch_size=None))
            clock.lap("optimise")
            trainer.test(module, dataloaders=DataLoader([0], batch_size=None), verbose=False)
            clock.lap("curves")
        result.saliency = _saliency(module.final_mask(), prepared.image_size)
        result.deletion, result.insertion, result.history = module.deletion, module.insertion, module.history
        if config.maps == "per_word":
            result.words = []
            for position, word, indices in words:
                if any((w[0], w[2]) == (position, indices) for w in own):
                    k = next(k for k, w in enumerate(own) if (w[0], w[2]) == (position, indices))
                    saliency = _saliency(module.word_masks()[k : k + 1], prepared.image_size)
                    curves, probs = module.word_curves[k], word_probs[k]
                else:  # the joint map
                    saliency, curves = result.saliency, (result.deletion, result.insertion)
                    probs = (result.p_image, result.p_baseline)
                unstable = probs[0] - probs[1] < config.min_gap
                result.words.append(WordMap(position, word, indices, saliency, *curves, *probs, unstable=unstable))
        result.out_of_range = any(c.leaves_unit_range(config.curve_margin) for c in (result.deletion, result.insertion))
    result.seconds = time.perf_counter() - start
    result.timings = clock.laps
    return result


def _saliency(mask: Tensor, image_size: tuple[int, int]) -> np.ndarray:
    """``1 - M`` of a ``(1, 1, h, w)`` mask, upsampled over the original image: ``(H, W)`` float32."""
    return (1 - upsample_to_image(mask.detach().float(), image_size))[0, 0].cpu().numpy().astype(np.float32)


def _warm_prior(adapter: Adapter, prepared, config: ExplainConfig, log_probs: Tensor, groups: Tensor,
                coarse: tuple[Tensor, Tensor] | None) -> Tensor:
    """The warm start's ``(G, 1, h, w)`` prior of each group of tokens (the joint map's, then each word's):
    the fine sweep (quarter-side regions), then the coarse half-side one (the selection's ``coarse`` when it
    ran), run only if :func:`sweep_prior` asks for it, i.e. where some group trusts the fine sweep less than fully."""
    weights = groups.float().T

    def drops(sweep: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:  # (K, G) nats each region costs each group
        keep, swept = sweep
        return keep.cpu(), (log_probs @ weights)[None] - swept @ weights

    fine = drops(_sweep(adapter, prepared, config, config.optim.warm_windows, side=0.25))

    @functools.cache  # run once, for the first group that needs it
    def half_side() -> tuple[Tensor, Tensor]:
        return drops(coarse or _sweep(adapter, prepared, config, config.select.windows or 3))

    def sweeps(group: int) -> Iterator[tuple[Tensor, Tensor]]:  # the coarse one only if sweep_prior reads on
        yield fine[0], fine[1][:, group]
        keep, cost = half_side()
        yield keep, cost[:, group]

    return torch.stack([sweep_prior(sweeps(g)) for g in range(len(groups))])


@torch.no_grad()
def _sweep(adapter: Adapter, prepared, config: ExplainConfig, windows: int, side: float = 0.5) -> tuple[Tensor, Tensor]:
    """A sweep of ``windows x windows`` regions ``side`` of the image's side: its ``(K, 1, h, w)`` keep-masks
    and ``(K, T)`` the log-probability of each answer token with region ``k`` replaced by the baseline."""
    keep = sweep_masks(mask_grid_shape(prepared.image_size, config.optim.mask_size), windows, side)
    keep = keep.to(adapter.device)
    log_probs = torch.zeros(len(keep), prepared.answer_ids.numel())

    def run(first: int, last: int) -> None:
        weights = adapter.project_mask(keep[first:last], prepared)
        log_probs[first:last] = adapter.answer_log_probs(prepared, blend(prepared, weights, insertion=False)).float().cpu()

    in_chunks(len(keep), config.optim.batch_size, run)
    return keep, log_probs


def _trainer(adapter: Adapter, log_dir: Path | None, folder: str, images: SaliencyImageLogger, progress: bool = False,
             **overrides) -> Trainer:
    """The single-device trainer of one pair's mask, on the adapter's device, in full precision
    (the mask and the loss; the model runs in its own dtype)."""
    quiet_libraries()
    device = adapter.device
    logger: Any = False
    if log_dir is not None:
        logger = TensorBoardLogger(save_dir=str(log_dir), name=folder, version="", default_hp_metric=False)
    settings = dict(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        max_epochs=1,
        logger=logger,
        callbacks=[images, *([IterationProgress()] if progress else [])],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        precision="32-true",
    )
    settings.update(overrides)
    return Trainer(**settings)


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
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last  # a phase may resume
        self.last = now
