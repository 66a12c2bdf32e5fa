"""The sanity checks of a user's model and images, in one run: :func:`sanity_check`.

For every pair it explains the model's answer with the user's settings (the *original* map), then

1. scores that map and two reference explainers, grid occlusion and superpixel occlusion
   (:mod:`lvlm_heat.methods.occlusion`), with the same metrics: pointing game and box mass where
   the dataset has boxes, deletion and insertion AUC over the same mask grid, forward passes. They
   are the run's own ``--method`` explainers: one :func:`~lvlm_heat.pipeline.explain_pair` call with
   the user's methods and ``grid`` and ``superpixel`` added gives every map;
2. re-explains the same answer with another noise seed (the map's own stability: the floor the
   other correlations are read against) and another pair's answer on the same image (randomised
   answers);
3. re-explains the same answer tokens on a model randomised from the top down, stage by stage
   (cascading parameter randomisation, Adebayo et al., 2018, "Sanity Checks for Saliency Maps";
   :mod:`lvlm_heat.sanity.randomisation`), and restores the weights exactly afterwards.

Maps are compared by Spearman rank correlation of their means over the mask grid's cells.

Which tokens are explained stays fixed: the original map's tokens are selected by the user's rule
(``--select.rule``); every re-explanation then selects the whole words those tokens belong to
(``SelectionConfig(rule="words")``), because the model-dependent rules (the LLR against the
baseline, and any rule that asks the model under test) would select nothing on a randomised model.
When the word rule would select other tokens than the original rule did (a word only partly
selected, or repeated in the answer), the original map is made again with the word rule, so the
compared maps always explain the same tokens.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from lvlm_heat.adapters.base import Adapter
from lvlm_heat.config import ExplainConfig, SanityConfig, SelectionConfig
from lvlm_heat.data.pairs import Query
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import mask_grid_shape
from lvlm_heat.methods.occlusion import cell_means
from lvlm_heat.metrics import peak
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.record import EXPLAINED, ExplanationRecord, MethodMap, TokenScore
from lvlm_heat.sanity.randomisation import WeightSnapshot, find_blocks, randomise_, spearman, stage_counts, top_overlap
from lvlm_heat.selection import select_tokens, selected_words

REFERENCES = ("grid", "superpixel")
"""The reference explainers every sanity run adds to the user's ``--method``."""


@dataclass
class _Checked:
    """A pair whose original map exists, with what its re-explanations need."""

    case: Query
    answer: str
    words: list[str]
    fixed: ExplainConfig
    reference: ExplanationRecord
    cells: torch.Tensor
    record: dict[str, Any]
    maps: dict[str, np.ndarray]


def whole_words(tokens: list[TokenScore]) -> list[str]:
    """The whole words of the answer that the selected tokens belong to, in answer order, each once
    (:func:`~lvlm_heat.selection.selected_words`).

    Example:
        >>> tokens = [TokenScore(k, t, 0.0, 0.0, False, k in (2, 4)) for k, t in enumerate(["the", " sq", "uare",
        ...           " is", " red"])]
        >>> whole_words(tokens)
        ['square', 'red']
    """
    return list(dict.fromkeys(word.text for word in selected_words(tokens)))


def _by_words(explain: ExplainConfig, words: list[str]) -> ExplainConfig:
    return replace(explain, select=SelectionConfig(rule="words", words=list(words)))


def _same_selection(tokens: list[TokenScore], config: ExplainConfig) -> bool:
    copies = select_tokens([replace(t) for t in tokens], config.select)
    return [t.selected for t in copies] == [t.selected for t in tokens]


def _answer_text(adapter: Adapter, case: Query, explain: ExplainConfig) -> str:
    """The answer to explain: the case's own, or the model's greedy answer as text."""
    if case.answer is not None and case.answer.strip():
        return case.answer
    texts, special = adapter.token_texts(adapter.generate(case.image, case.question, explain.max_new_tokens))
    return "".join(t for t, s in zip(texts, special) if not s).strip()


class _Run:
    """The state of one sanity run: the settings and where progress goes.

    ``explain`` holds the explainer under test alone (the first of ``--method``): what the re-explanations and the
    randomisation run; ``compared`` holds it, the user's other methods and the references.
    """

    def __init__(self, adapter: Adapter, explain: ExplainConfig, config: SanityConfig,
                 report: Callable[[str], None] | None) -> None:
        self.adapter = adapter
        methods = list(dict.fromkeys([*explain.methods, *REFERENCES]))
        self.explain, self.compared = replace(explain, method=methods[0]), replace(explain, method=",".join(methods))
        self.config = config
        self.report = report or (lambda line: None)

    def explain_map(self, case: Query, answer: str, config: ExplainConfig) -> ExplanationRecord:
        return explain_pair(self.adapter, replace(case, answer=answer), config)

    def cells(self, saliency: np.ndarray) -> torch.Tensor:
        """``(h, w)`` means of a map over the mask grid's cells: what the correlations compare."""
        return cell_means(torch.from_numpy(saliency), mask_grid_shape(saliency.shape, self.explain.optim.mask_size))

    def compare(self, checked: _Checked, saliency: np.ndarray | None) -> dict[str, float | None]:
        if saliency is None:
            return {"spearman": None, "top_overlap": None}
        cells = self.cells(saliency)
        return {"spearman": spearman(checked.cells, cells),
                "top_overlap": top_overlap(checked.cells, cells, self.config.top_fraction)}

    # -- one pair: every explainer's map ------------------------------------------------------
    def check_pair(self, case: Query) -> tuple[dict[str, Any], _Checked | None]:
        record: dict[str, Any] = {"id": case.pair_id, "folder": case.folder, "question": case.question,
                                  "bbox": list(case.bbox) if case.bbox else None}
        try:
            answer = _answer_text(self.adapter, case, self.explain)
            reference = self.explain_map(case, answer, self.compared)
            record.update(answer=answer, status=reference.status, selected=reference.selected_tokens)
            if reference.status != EXPLAINED:
                record["reason"] = "no answer token selected: the model would say the same without the image"
                return record, None
            words = whole_words(reference.tokens)
            # The model-dependent rules (llr, evidence) would select nothing on a randomised model.
            fixed = self.explain if self.explain.select.rule in ("all", "words") else _by_words(self.explain, words)
            if not _same_selection(reference.tokens, fixed):
                reference = self.explain_map(case, answer, replace(fixed, method=self.compared.method))
            record.update(words=words, p_image=reference.p_image, p_baseline=reference.p_baseline,
                          unstable=reference.unstable)
            checked = _Checked(case, answer, words, fixed, reference, self.cells(reference.saliency), record,
                               {m.method: m.saliency for m in reference.methods})
            record["methods"] = {m.method: self.metrics(m) for m in reference.methods}
        except (LvlmHeatError, FloatingPointError) as err:
            record.update(status="failed", reason=str(err).splitlines()[0])
            return record, None
        return record, checked

    def metrics(self, found: MethodMap) -> dict[str, Any]:
        """One explainer's figures on one pair: peak, plausibility, AUCs, and what its map cost."""
        out = {"peak": list(peak(torch.from_numpy(found.saliency))), "pointing_hit": found.pointing_hit,
               "box_mass": found.box_mass, "deletion_auc": found.deletion.auc, "insertion_auc": found.insertion.auc,
               "curve_out_of_range": found.out_of_range, "curve_passes": 2 * (len(found.deletion.fractions) - 2),
               "passes": found.passes, "seconds": found.seconds}
        occlusion = self.compared.occlusion
        if found.method in REFERENCES:  # one pass per region, and one of the whole image
            out.update(regions=found.passes - 1,
                       fill=occlusion.grid_fill if found.method == "grid" else occlusion.superpixel_fill)
        return out

    # -- re-explanations on the unchanged model ----------------------------------------------
    def rerun(self, checked: _Checked) -> dict[str, Any]:
        optim = checked.fixed.optim
        other_seed = replace(checked.fixed, optim=replace(optim, seed=optim.seed + 1))
        result = self.explain_map(checked.case, checked.answer, other_seed)
        checked.maps["rerun"] = result.saliency
        return self.compare(checked, result.saliency)

    def random_answer(self, checked: _Checked, others: list[_Checked], rng: random.Random) -> dict[str, Any]:
        """Explain another pair's answer (its own selected words) on this pair's image and question."""
        donor = next((o for o in others if o.words != checked.words), None)
        if donor is not None:
            answer, words, source = donor.answer, donor.words, donor.case.pair_id
        else:  # one pair only, or every pair explains the same words: shuffle this answer's words
            pieces = checked.answer.split()
            shuffled = rng.sample(pieces, len(pieces))
            if shuffled == pieces and len(set(pieces)) > 1:
                shuffled = pieces[1:] + pieces[:1]
            if shuffled == pieces:
                return {"answer": None, "source": None, "spearman": None, "top_overlap": None,
                        "reason": "a one-word answer and no other pair to take an answer from"}
            answer, words, source = " ".join(shuffled), checked.words, "shuffled"
        try:
            result = self.explain_map(checked.case, answer, _by_words(checked.fixed, words))
        except (LvlmHeatError, FloatingPointError) as err:
            return {"answer": answer, "source": source, "spearman": None, "top_overlap": None,
                    "reason": str(err).splitlines()[0]}
        checked.maps["random_answer"] = result.saliency
        return {"answer": answer, "words": words, "source": source, **self.compare(checked, result.saliency)}

    # -- cascading randomisation ---------------------------------------------------------------
    def cascade(self, checked: list[_Checked]) -> dict[str, Any]:
        """Randomise the model from the top down, re-explain every pair at each stage, restore the weights.

        Each pair's record gets ``randomisation``: per stage, the correlation of its map with the original.
        Returns the cascade's block names (top first) and, per stage, how much of the model it randomised.
        """
        model = self.adapter.model
        first = checked[0]
        prepared = self.adapter.prepare(first.case.image, first.case.image, first.case.question,
                                        self.adapter.encode_answer(first.answer))
        blocks = find_blocks(model, lambda: self.adapter.answer_log_probs(
            prepared, {k: v[None] for k, v in prepared.image.items()}))
        if not blocks:
            raise LvlmHeatError("no block of the model runs in its forward pass: nothing to randomise")
        every = {id(p): p for p in model.parameters()}
        total = sum(p.numel() for p in every.values())
        stages = [(f"top {count}/{len(blocks)} blocks", blocks[:count])
                  for count in stage_counts(len(blocks), self.config.stages)]
        if self.config.all_parameters:
            stages.append(("every parameter", None))
        generator = torch.Generator().manual_seed(self.config.seed)
        done: dict[int, torch.nn.Parameter] = {}
        summary = []
        with WeightSnapshot(model).kept():
            for label, chosen in stages:
                params = every.values() if chosen is None else (p for _, b in chosen for p in b.parameters())
                fresh = {id(p): p for p in params if id(p) not in done}
                randomise_(list(fresh.values()), generator)
                done.update(fresh)
                summary.append({"stage": label, "blocks": len(blocks) if chosen is None else len(chosen),
                                "last_block": None if chosen is None else chosen[-1][0],
                                "parameter_fraction": sum(p.numel() for p in done.values()) / total})
                line = []
                for c in checked:
                    outcome = {"stage": label, **self.restaged(c, label)}
                    c.record.setdefault("randomisation", []).append(outcome)
                    line.append(f"{c.case.pair_id} {_number(outcome['spearman'])}")
                self.report(f"  randomised {label}: rank correlation " + ", ".join(line))
        return {"cascade": [name for name, _ in blocks], "stages": summary}

    def restaged(self, checked: _Checked, label: str) -> dict[str, Any]:
        """The same answer tokens re-explained on the model as it is now."""
        try:
            result = self.explain_map(checked.case, checked.answer, checked.fixed)
        except (LvlmHeatError, FloatingPointError) as err:
            return {"spearman": None, "top_overlap": None, "p_image": None, "reason": str(err).splitlines()[0]}
        checked.maps[f"randomised {label}"] = result.saliency
        return {"p_image": result.p_image, **self.compare(checked, result.saliency)}


def _number(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def sanity_check(adapter: Adapter, cases: list[Query], explain: ExplainConfig | None = None,
                 config: SanityConfig | None = None, report: Callable[[str], None] | None = None,
                 ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, dict[str, np.ndarray]]]:
    """Run every check on ``cases`` with ``adapter``'s model; the model's weights are unchanged afterwards.

    Args:
        adapter: The loaded model.
        cases: The pairs.
        explain: The explanation settings of the original maps (the user's, as for ``train.py``).
        config: What the checks do.
        report: Called with one line of progress at a time (e.g. ``print``).

    Returns:
        One record per pair (metrics of each explainer, the re-run's and the random answer's correlation
        with the original map, and per randomisation stage), the cascade (``None`` when no pair had a map),
        and each checked pair's maps ``(H, W)`` by name, keyed by its folder.
    """
    explain, config = explain or ExplainConfig(), config or SanityConfig()
    run = _Run(adapter, explain, config, report)
    records, checked = [], []
    for case in cases:
        record, done = run.check_pair(case)
        records.append(record)
        if done is None:
            run.report(f"[{case.pair_id}] {record['status']}: {record.get('reason', '')}")
            continue
        checked.append(done)
        methods = record["methods"]
        run.report(f"[{case.pair_id}] {done.answer!r} words {done.words}: " + "; ".join(
            f"{name} peak {'in' if m['pointing_hit'] else 'out of'} box" if m["pointing_hit"] is not None
            else f"{name} deletion {m['deletion_auc']:.2f}" for name, m in methods.items()))
    rng = random.Random(config.seed)
    for k, done in enumerate(checked):
        if config.rerun:
            done.record["rerun"] = run.rerun(done)
        if config.random_answers:
            done.record["random_answer"] = run.random_answer(done, checked[k + 1:] + checked[:k], rng)
    cascade = run.cascade(checked) if checked and (config.stages or config.all_parameters) else None
    return records, cascade, {done.case.folder: done.maps for done in checked}
