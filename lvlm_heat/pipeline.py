"""One pair, end to end: the method's steps in order, each in a module of its own.

1. :func:`lvlm_heat.prepare.prepare`: answer, baseline, processor, reliance pass, selection;
2. for each explainer of ``--method``, on the same prepared pair:

   - ``igos``: :func:`lvlm_heat.warm_start.initial_mask` (where the mask starts), then
     :func:`lvlm_heat.explainer.optimise_mask` (the mask optimisation, Lightning) and its curves;
   - the others: :func:`lvlm_heat.methods.attribution_maps`, then the same curves;
3. :class:`lvlm_heat.record.ExplanationRecord`: the result, made here once, holding every explainer's map.

Writing the pair's files is the caller's choice (:func:`lvlm_heat.reporting.outputs.write_pair_outputs`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvlm_heat.adapters.base import Adapter
from lvlm_heat.config import ExplainConfig
from lvlm_heat.data.answers import answer_matches
from lvlm_heat.data.pairs import Query
from lvlm_heat.explainer import optimise_mask
from lvlm_heat.geometry import grid_to_image
from lvlm_heat.methods import attribution_maps
from lvlm_heat.methods.occlusion import cell_means
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.metrics.functional import box_mass, pointing_hit
from lvlm_heat.prepare import Prepared, prepare
from lvlm_heat.record import EXPLAINED, NOT_GROUNDED, ExplanationRecord, ImageMap, MethodMap, WordMap
from lvlm_heat.refine import refine_mask
from lvlm_heat.reporting.console import quiet_libraries
from lvlm_heat.reporting.progress import IterationProgress
from lvlm_heat.reporting.tensorboard import PairLogger, SaliencyImageLogger
from lvlm_heat.warm_start import initial_mask


def explain_pair(adapter: Adapter, query: Query, config: ExplainConfig | None = None, *,
                 log_dir: Path | None = None, progress: bool = False,
                 trainer_overrides: dict[str, Any] | None = None) -> ExplanationRecord:
    """Explain one image-question pair with ``adapter``'s model.

    Args:
        adapter: A loaded model (:func:`lvlm_heat.adapters.load_adapter`).
        query: The pair (:class:`~lvlm_heat.data.pairs.Query`: image, question, and optionally the answer to
            explain, an evidence box and a reference answer).
        config: Settings (defaults: :class:`~lvlm_heat.config.ExplainConfig`).
        log_dir: TensorBoard events go to ``log_dir/<query.folder>/``; none are written when ``None``.
        progress: Show a bar over the iterations.
        trainer_overrides: Extra ``lightning.Trainer`` arguments of the pair's trainer.

    Returns:
        The pair's record: ``explained`` with its maps and curves, or ``not_grounded`` (no answer token depends on
        the image: a result, with every token's LLR, and no map).
    """
    config = config or ExplainConfig()
    quiet_libraries()
    prepared = prepare(adapter, query, config)
    record = _record(adapter, prepared, config)
    if prepared.selected.any():
        found = []
        for name in config.methods:
            if name == "igos":
                found.append(_optimised(prepared, config, log_dir, progress, trainer_overrides))
            else:
                found.append(_attributed(name, adapter, prepared, config))
        _add_maps(record, prepared, found, config)
    if prepared.scorer is not None:  # batch_size auto: the number it stood for
        record.settings["optim"]["batch_size"] = prepared.scorer.batch_size
    record.seconds, record.timings = prepared.clock.seconds, dict(prepared.clock.laps)
    return record


@dataclass(frozen=True)
class _Maps:
    """What one explainer found: per token group its map on its own cells and its curves, and its cost."""

    method: str
    grids: list[np.ndarray]
    curves: list[tuple[Curve, Curve]]
    passes: int
    seconds: float
    history: list[dict[str, float]]


def _optimised(prepared: Prepared, config: ExplainConfig, log_dir: Path | None, progress: bool,
               trainer_overrides: dict[str, Any] | None) -> _Maps:
    """``igos``: the warm start, then the mask optimisation and its curves."""
    query, start, before = prepared.query, time.perf_counter(), prepared.scorer.passes
    initial = initial_mask(prepared, config.warm_start)
    prepared.clock.lap("prepare")  # the warm start's passes: forward only, like the selection's
    warm_seconds, warm_passes = time.perf_counter() - start, prepared.scorer.passes - before
    own = [f"{w.position}_{w.text}" for w, group in zip(prepared.words, prepared.word_groups) if group]
    images = SaliencyImageLogger(query.image, prepared.tokens, own)
    callbacks = [images]
    if progress:
        callbacks.append(IterationProgress())
    logger = PairLogger(Path(log_dir) / query.folder) if log_dir is not None else None
    smoothness = config.video.smoothness if query.video else 0.0
    refined = config.refine.stage != "none" and not query.extra_images  # one image at a time (a warning says so)
    skip_curves = {"limit_test_batches": 0} if refined else {}  # the fine stage draws the curves of its own masks
    optimised = optimise_mask(prepared, config.optim, initial, smoothness, logger=logger, callbacks=callbacks,
                              trainer_overrides={**(trainer_overrides or {}), **skip_curves})
    if refined:  # its steps follow the optimisation's in TensorBoard, with the same mask images, overlays, curves
        if logger is not None:
            logger.step_offset = config.optim.iterations
        optimised = refine_mask(prepared, optimised, config.optim, config.refine, logger=logger,
                                callbacks=[images], trainer_overrides=trainer_overrides)
    # one image: (h, w) per group; several: (images, h, w), every image's cells on one scale
    grids = [(1 - (mask[0] if len(mask) == 1 else mask)).float().cpu().numpy() for mask in optimised.masks]
    return _Maps("igos", grids, optimised.curves, warm_passes + optimised.passes, warm_seconds + optimised.seconds,
                 optimised.history)


def _attributed(name: str, adapter: Adapter, prepared: Prepared, config: ExplainConfig) -> _Maps:
    """Another explainer's maps, and their curves: the map's cells of the mask grid ranked by its mean over each,
    exactly as the optimised mask's are."""
    scorer, start = prepared.scorer, time.perf_counter()
    maps, passes = attribution_maps(name, adapter, prepared, config)
    prepared.clock.lap(name)
    seconds = time.perf_counter() - start
    curves = []
    for group, saliency in enumerate(maps):
        ranking = -cell_means(saliency, scorer.grid)[None, None].to(adapter.device)  # low = important, as a mask
        curves.append(scorer.curves(ranking, prepared.groups[group], *prepared.probabilities[group],
                                    config.optim.curve_steps))
    prepared.clock.lap("curves")
    return _Maps(name, [m.float().numpy() for m in maps], curves, passes, seconds, [])


def _record(adapter: Adapter, prepared: Prepared, config: ExplainConfig) -> ExplanationRecord:
    """The record of what :func:`prepare` found: answer, tokens, reliance; ``not_grounded`` until maps are added."""
    query = prepared.query
    match = answer_matches(prepared.answer, query.reference, query.options) if query.reference else None
    settings = asdict(config)
    settings["video"].pop("path", None)  # the input, not a setting
    return ExplanationRecord(
        query.pair_id, query.question, prepared.answer, NOT_GROUNDED, prepared.tokens, model=adapter.name,
        settings=settings, image_path=query.image_path, bbox=query.bbox, folder=query.folder,
        reference=query.reference, answer_match=match, image_notes=list(query.image_notes),
        image_size=(query.image.height, query.image.width),
        reliance=dict(prepared.reliance), warnings=list(prepared.warnings), given_answer=query.answer,
        image_digest=query.image_digest, image=query.image, video=query.video,
    )


def _add_maps(record: ExplanationRecord, prepared: Prepared, found: list[_Maps], config: ExplainConfig) -> None:
    """Every explainer's map, curves and plausibility (with per-word maps, each word's); the first explainer's are
    the record's own."""
    size = prepared.inputs.image_size

    def plausibility(saliency: np.ndarray) -> tuple[bool | None, float | None]:
        if record.bbox is None:
            return None, None
        image = torch.from_numpy(saliency)
        return pointing_hit(image, record.bbox), box_mass(image, record.bbox)

    def out_of_range(curves: tuple[Curve, Curve]) -> bool:
        return any(c.leaves_unit_range(config.curve_margin) for c in curves)

    record.status = EXPLAINED
    record.p_image, record.p_baseline = prepared.probabilities[0]
    record.unstable = record.p_image - record.p_baseline < config.min_gap
    if prepared.query.extra_images:  # several images (igos only): each image's part, one scale for all
        _add_images(record, prepared, found[0], out_of_range(found[0].curves[0]))
        return
    for k, maps in enumerate(found):
        images = [grid_to_image(grid, size) for grid in maps.grids]
        words = None
        if config.maps == "per_word":
            words = []
            for word, group in zip(prepared.words, prepared.word_groups):
                p_image, p_baseline = prepared.probabilities[group]
                words.append(WordMap(word.position, word.text, word.tokens, images[group], *maps.curves[group],
                                     p_image, p_baseline, p_image - p_baseline < config.min_gap,
                                     *plausibility(images[group]), grid=maps.grids[group]))
        record.methods.append(MethodMap(maps.method, "" if k == 0 else maps.method, images[0], *maps.curves[0],
                                        out_of_range(maps.curves[0]), *plausibility(images[0]), maps.passes,
                                        maps.seconds, words, grid=maps.grids[0]))
        if maps.history:
            record.history = maps.history
    record.adopt(record.methods[0])


def _add_images(record: ExplanationRecord, prepared: Prepared, maps: _Maps, out_of_range: bool) -> None:
    """The map of a question about several images (or a clip): each image's part, with its share of the mass; the
    first image's part is the record's own map. The box metrics stand for one image and are left out."""
    query, grid = prepared.query, maps.grids[0]  # (images, h, w)
    total = float(grid.sum())
    paths = [query.image_path if not query.video else None, *query.extra_paths]
    for k, image in enumerate(query.images):
        size = (image.height, image.width)
        share = float(grid[k].sum()) / total if total > 0 else 1 / len(grid)
        record.images.append(ImageMap(k, paths[k], size, share, grid_to_image(grid[k], size), grid[k], image))
    first = record.images[0]
    record.methods.append(MethodMap(maps.method, "", first.saliency, *maps.curves[0], out_of_range, None, None,
                                    maps.passes, maps.seconds, None, grid=first.grid))
    record.history = maps.history
    record.adopt(record.methods[0])
