"""The grounded demo sets used to measure localisation: objects where their boxes say, any image shape."""

import numpy as np
import pytest

from lvlm_heat.demo.evaluate import make_pair, paint_out
from lvlm_heat.demo.synthetic import COLORS


@pytest.mark.parametrize("split, size", [("heldout", (128, 128)), ("large", (512, 512)), ("wide", (256, 128)),
                                         ("tall", (128, 256)), ("crowded", (128, 128))])
def test_boxes_follow_the_image(split, size):
    for index in range(6):
        pair = make_pair(split, index)
        assert pair.image.size == size
        left, top, right, bottom = pair.target
        assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
        centre = np.asarray(pair.image)[(top + bottom) // 2 + (bottom - top) // 4, (left + right) // 2]
        expected = np.array(COLORS[pair.qa.target.color])
        assert np.abs(centre.astype(int) - expected).max() <= 40, (split, index)  # colours are jittered by 15
        assert make_pair(split, index).image.tobytes() == pair.image.tobytes()  # a pure function


def test_paint_out_removes_the_object():
    pair = make_pair("heldout", 0)
    painted = np.asarray(paint_out(pair.image, pair.target, [pair.target, *pair.others])).astype(int)
    left, top, right, bottom = pair.target
    region = painted[top:bottom, left:right]
    assert np.ptp(region.reshape(-1, 3), axis=0).max() == 0  # one flat colour
    assert np.abs(region[0, 0] - np.array(COLORS[pair.qa.target.color])).max() > 40
