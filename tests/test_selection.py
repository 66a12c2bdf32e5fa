"""Which answer tokens are explained (METHOD.md section 2)."""

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
