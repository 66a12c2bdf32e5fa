"""Which answer tokens to explain (METHOD.md section 2).

The paper's rule (``llr``) keeps the tokens the image makes much more likely than the baseline
does: ``LLR_t = log p(a_t | I) - log p(a_t | B) > alpha``, among content tokens (no special
tokens, no whitespace or punctuation, no stop words). Its blind spot (METHOD.md): when the model's
prior, or a colour blob the blur keeps, already favours the answer, the LLR is small although the
word depends on one region. The default rule (``evidence``) also keeps a content token whose
log-probability drops by more than ``alpha`` when a single region is replaced by the baseline, over
a fixed sweep of overlapping regions (9 forward passes by default). A one-token answer (a
multiple-choice letter) is kept when its probability halves, ``p(a | B) <= 0.5 p(a | I)``. The
user can instead explain all tokens, or the tokens of given words ("red").
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable

import torch
from torch import Tensor

from lvlm_heat.config import SelectionConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import TokenScore

STOP_WORDS = frozenset(
    "a an the of is are was were be been being and or but to in on at by for with from as it its this that "
    "these those there here what which who whom whose how do does did has have had i you he she we they "
    "them his her their our your my me us not no so than then too very can will would should could may "
    "might must shall into onto over under up down out off again further once just".split()
)

def is_content(text: str) -> bool:
    """Not whitespace, not punctuation only, not a stop word."""
    word = text.strip().lower()
    return bool(word) and not all(c in string.punctuation for c in word) and word not in STOP_WORDS


def _word_spans(texts: list[str], words: list[str]) -> set[int]:
    """Indices of the tokens that overlap any occurrence of ``words`` in the answer."""
    answer = "".join(texts)
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text))
    chosen: set[int] = set()
    for word in words:
        matches = list(re.finditer(rf"(?<!\w){re.escape(word.strip())}(?!\w)", answer, flags=re.IGNORECASE))
        if not matches:
            raise LvlmHeatError(f"word {word!r} is not in the answer {answer.strip()!r}: pick words of the answer")
        for match in matches:
            chosen.update(k for k in range(len(texts)) if starts[k] < match.end() and starts[k + 1] > match.start())
    return chosen


def selected_words(tokens: list[TokenScore]) -> list[tuple[int, str, list[int]]]:
    """The words of the answer that hold selected tokens, each with the selected tokens it is made of.

    A word is a run of letters, digits, apostrophes and hyphens in the answer text; its tokens are the
    selected tokens that overlap it (a sub-word split counts once per word). Words whose selected
    tokens are the same (one token spanning two words) are merged.

    Returns:
        ``(k, word, token indices)`` per word, ``k`` its position among the answer's words.

    Example:
        >>> toks = [TokenScore(i, t, 0.0, 0.0, False, selected=s)
        ...         for i, (t, s) in enumerate([(" the", False), (" umb", True), ("rella", True), (" is", False),
        ...                                     (" red", True), (".", False)])]
        >>> selected_words(toks)
        [(1, 'umbrella', [1, 2]), (3, 'red', [4])]
    """
    texts = [t.text for t in tokens]
    starts = [0]
    for text in texts:
        starts.append(starts[-1] + len(text))
    words: dict[tuple[int, ...], tuple[int, str]] = {}
    for k, match in enumerate(re.finditer(r"\w(?:[\w'-]*\w)?", "".join(texts))):
        overlap = tuple(t.index for t, first, end in zip(tokens, starts, starts[1:])
                        if t.selected and first < match.end() and end > match.start())
        if overlap:
            position, name = words.get(overlap, (k, ""))
            words[overlap] = (position, f"{name} {match.group()}".strip())
    return sorted((position, name, list(indices)) for indices, (position, name) in words.items())


def sweep_masks(cells: tuple[int, int], windows: int, side: float = 0.5) -> Tensor:
    """Keep-masks of a sweep: ``(windows ** 2, 1, h, w)``, 0 on one region each.

    Regions are ``side`` of the mask's side in each direction, at ``windows`` evenly spaced offsets.
    The ``evidence`` rule's regions are half the side, so neighbouring regions overlap and any
    object up to a quarter of the image lies whole in one; the warm start's are a quarter.

    Example:
        >>> sweep_masks((4, 4), 2)[:, 0].tolist()[0]
        [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    """
    rows, cols = cells
    height, width = max(1, round(rows * side)), max(1, round(cols * side))
    tops = torch.linspace(0, rows - height, windows).round().long().tolist() if windows > 1 else [0]
    lefts = torch.linspace(0, cols - width, windows).round().long().tolist() if windows > 1 else [0]
    masks = torch.ones(len(tops) * len(lefts), 1, rows, cols)
    for k, (top, left) in enumerate((t, v) for t in tops for v in lefts):
        masks[k, :, top : top + height, left : left + width] = 0
    return masks


WHOLE_DROP = 1.0
"""A region's drop (nats) that the warm start trusts fully (:func:`sweep_prior`)."""


def sweep_prior(sweeps: Iterable[tuple[Tensor, Tensor]], min_drop: float = WHOLE_DROP, power: float = 2.0) -> Tensor:
    """Where the sweeps found the evidence: ``(1, h, w)`` in [0, 1], finest sweep first.

    The first (fine, dense) sweep's map is each cell's mean drop over the regions covering it,
    min-max scaled to [0, 1], to the power ``power``. Cells of the object lie in every region whose
    removal costs the tokens, cells around it in some of them only: the power keeps the map's order
    and narrows its halo (a cell at half the peak falls to a quarter with the default 2).

    A sweep is trusted by ``min(1, largest drop / min_drop)``: its map enters with that weight and
    the rest of the weight passes to the next, coarser sweep. So small regions place the evidence
    when removing one of them costs a whole nat; an object larger than the small regions (none of
    them holds it whole) is placed by the coarse regions; a sweep whose regions change nothing
    (evidence spread over the image) marks nothing. A coarse sweep's map is each cell's *largest*
    drop over the regions covering it: its few regions cover the corners once and the centre up to
    four times, so a mean would put the peak in the corner of the region that holds the object;
    the largest drop marks that whole region evenly and leaves the placing to the optimisation.

    Args:
        sweeps: ``(keep, drops)`` per sweep, finest first: ``(K, 1, h, w)`` keep-masks (:func:`sweep_masks`)
            and ``(K,)`` how much replacing each region lowers the explained tokens' log-probability.
            Read lazily: a sweep after one trusted fully is never asked for (a generator may run it on demand).
        min_drop: A drop (nats) that counts as whole: smaller sweeps are trusted in proportion.
        power: Sharpness of each sweep's map (1: the drops as they are).

    Example:
        >>> keep = sweep_masks((4, 4), 3)  # nine 2 x 2 regions; only the top-left one matters
        >>> sweep_prior([(keep, torch.tensor([3.0] + [0.0] * 8))], power=1)[0, :2].tolist()
        [[1.0, 0.5, 0.0, 0.0], [0.5, 0.25, 0.0, 0.0]]
        >>> sweep_prior([(keep, torch.tensor([3.0] + [0.0] * 8))])[0, :2].tolist()  # squared: a narrower halo
        [[1.0, 0.25, 0.0, 0.0], [0.25, 0.0625, 0.0, 0.0]]
        >>> sweep_prior([(keep, torch.tensor([0.5] + [0.0] * 8))])[0, 0].tolist()  # half a nat: half trusted
        [0.5, 0.125, 0.0, 0.0]
        >>> coarse = sweep_masks((4, 4), 2, side=0.75)  # the fine sweep finds nothing: the coarse one places it
        >>> sweep_prior([(keep, torch.zeros(9)), (coarse, torch.tensor([2.0, 0.0, 0.0, 0.0]))])[0].tolist()
        [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    prior, left = None, 1.0
    for k, (keep, drops) in enumerate(sweeps):
        shape, trust = _sweep_map(keep, drops, min_drop, largest=k > 0)
        prior = left * trust * shape**power + (0 if prior is None else prior)
        left *= 1 - trust
        if left <= 0:
            break
    return prior


def _sweep_map(keep: Tensor, drops: Tensor, min_drop: float, largest: bool = False) -> tuple[Tensor, float]:
    """One sweep's ``(1, h, w)`` map, each cell's mean (or ``largest``) drop over the regions covering it,
    min-max scaled (zeros when every cell gets the same), and the sweep's trust."""
    drops = drops.float().clamp_min(0)
    removed = 1 - keep[:, 0].float()
    weighted = drops.view(-1, 1, 1) * removed
    cells = weighted.amax(0) if largest else weighted.sum(0) / removed.sum(0).clamp_min(1)
    spread = cells.max() - cells.min()
    if spread <= 0:
        return torch.zeros_like(cells)[None], 0.0
    return ((cells - cells.min()) / spread)[None], min(1.0, float(drops.max()) / min_drop)


def select_tokens(tokens: list[TokenScore], config: SelectionConfig) -> list[TokenScore]:
    """Mark ``tokens[k].selected`` (and ``selected_by``) by ``config``'s rule and return ``tokens``."""
    candidates = [t for t in tokens if not t.special]
    evidence: dict[int, list[str]] = {}
    if config.rule in ("all", "words"):
        if config.rule == "all":
            chosen = {t.index for t in candidates}
        elif not config.words:
            raise LvlmHeatError("the 'words' rule needs --select.words, e.g. --select.words '[red]'")
        else:
            chosen = _word_spans([t.text for t in tokens], config.words) - {t.index for t in tokens if t.special}
        evidence = {index: ["rule"] for index in chosen}
    elif config.rule in ("evidence", "llr"):
        one_token = len(candidates) == 1 and candidates[0].text.strip()
        for token in candidates:
            if not (one_token or is_content(token.text)):
                continue
            threshold = math.log(2.0) if one_token else config.alpha  # one token: p(a | B) <= 0.5 p(a | I)
            drops = {"llr": token.llr}
            if config.rule == "evidence" and token.local_drop is not None:
                drops["local"] = token.local_drop
            found = [name for name, drop in drops.items() if (drop >= threshold if one_token else drop > threshold)]
            if found:
                evidence[token.index] = found
    else:
        raise LvlmHeatError(f"unknown selection rule {config.rule!r}: use evidence, llr, all or words")
    for token in tokens:
        token.selected = token.index in evidence
        token.selected_by = evidence.get(token.index, [])
    return tokens
