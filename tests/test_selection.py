"""Which answer tokens are explained (docs/method.md, 'Token selection')."""

import math

import pytest

from lvlm_heat.config import SelectionConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import TokenScore
from lvlm_heat.selection import select_tokens


def _tokens(texts, llrs, special=()):
    return [TokenScore(k, t, llr, 0.0, k in special) for k, (t, llr) in enumerate(zip(texts, llrs))]


def test_llr_rule_keeps_image_dependent_content_words():
    tokens = _tokens(["the", " circle", " is", " red", ".", "</s>"], [3.0, 0.4, 2.0, 4.2, 5.0, 9.0], special={5})
    select_tokens(tokens, SelectionConfig(alpha=1.0))
    # "the" and "is" are stop words, "." punctuation, "</s>" special, "circle" below alpha.
    assert [t.selected for t in tokens] == [False, False, False, True, False, False]


def test_alpha_is_a_strict_threshold():
    tokens = _tokens([" red", " blue"], [1.0, 1.01])
    select_tokens(tokens, SelectionConfig(alpha=1.0))
    assert [t.selected for t in tokens] == [False, True]


def test_one_token_answer_uses_the_halving_rule():
    kept = _tokens([" A"], [math.log(2.0) + 1e-6])
    dropped = _tokens([" A"], [math.log(1.9)])
    assert select_tokens(kept, SelectionConfig())[0].selected
    assert not select_tokens(dropped, SelectionConfig())[0].selected


def test_words_rule_selects_every_subword_of_the_word():
    tokens = _tokens(["the", " yel", "low", " circle"], [0, 0, 0, 0])
    select_tokens(tokens, SelectionConfig(rule="words", words=["Yellow"]))
    assert [t.selected for t in tokens] == [False, True, True, False]


def test_words_rule_rejects_words_not_in_the_answer():
    with pytest.raises(LvlmHeatError, match="not in the answer"):
        select_tokens(_tokens(["the", " red"], [0, 0]), SelectionConfig(rule="words", words=["blue"]))


def test_all_rule_skips_special_tokens_only():
    tokens = _tokens(["the", " red", "</s>"], [0, 0, 0], special={2})
    select_tokens(tokens, SelectionConfig(rule="all"))
    assert [t.selected for t in tokens] == [True, True, False]


def test_evidence_rule_catches_a_word_the_blur_keeps():
    """The blurred image keeps a colour blob, so 'red' has a small LLR; removing one region drops it."""
    tokens = [TokenScore(0, " the", -0.1, -0.1, False, log_prob_local=-3.0),   # a filler: never selected
              TokenScore(1, " circle", -0.2, -0.4, False, log_prob_local=-0.3),
              TokenScore(2, " red", -0.1, -0.6, False, log_prob_local=-2.5)]
    chosen = select_tokens(tokens, SelectionConfig())
    assert [t.selected for t in chosen] == [False, False, True] and chosen[2].selected_by == ["local"]
    paper = select_tokens(tokens, SelectionConfig(rule="llr"))
    assert not any(t.selected for t in paper)
    both = select_tokens([TokenScore(0, " red", -0.1, -4.0, False, log_prob_local=-3.0)], SelectionConfig())
    assert both[0].selected_by == ["llr", "local"]


def test_sweep_regions_cover_every_quarter_sized_object():
    from lvlm_heat.scorer import sweep_masks

    masks = sweep_masks((8, 12), 3)
    assert masks.shape == (9, 1, 8, 12)
    assert all((1 - m).sum() == 4 * 6 for m in masks)  # each region is half the mask's side each way
    for top in range(0, 7):
        for left in range(0, 10):  # any 2 x 3 object (a quarter of each side) lies whole in some region
            assert any((m[0, top:top + 2, left:left + 3] == 0).all() for m in masks), (top, left)
