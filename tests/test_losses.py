"""Loss terms of docs/method.md, 'Loss' on small tensors."""

import math

import pytest
import torch

from lvlm_heat.baseline import blur_kernel_size, make_baseline
from lvlm_heat.losses import bilateral_tv, edge_weights, gnc_weight, l1_term, l2_term, total_variation


def test_terms_by_hand():
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])
    assert l1_term(mask).item() == pytest.approx((0 + 1 + 0.5 + 0) / 4)
    assert l2_term(mask).item() == pytest.approx(1 + 0.25)
    # vertical diffs: (0.5-1)^2, (1-0)^2 -> mean 0.625; horizontal: (0-1)^2, (1-0.5)^2 -> 0.625
    assert total_variation(mask).item() == pytest.approx(1.25)
    assert gnc_weight(2, 1.0) == pytest.approx(math.exp(-2))


def test_bilateral_tv_is_cheap_across_image_edges():
    image = torch.zeros(1, 3, 4, 4)
    image[..., 2:] = 5.0  # a strong vertical edge between columns 1 and 2
    mask = torch.ones(1, 1, 4, 4)
    along_edge, across = mask.clone(), mask.clone()
    along_edge[..., 2:] = 0.0  # mask edge on the image edge
    across[..., 2:, :] = 0.0  # mask edge through flat regions
    weights = edge_weights(image, sigma=0.01)
    assert bilateral_tv(along_edge, along_edge, weights) < bilateral_tv(across, across, weights)


def test_baselines():
    from PIL import Image

    assert [blur_kernel_size(w) for w in (64, 500, 800, 2000)] == [101, 201, 301, 501]
    stripes = Image.new("RGB", (60, 40))
    stripes.paste((255, 255, 255), (0, 0, 30, 40))
    blurred = torch.tensor(list(make_baseline(stripes).getdata()), dtype=torch.float32).view(40, 60, 3)
    assert (blurred[:, 1:] - blurred[:, :-1]).abs().max() < 10  # the sharp 255 step is gone: only blobs remain
    assert make_baseline(stripes, "black").getextrema() == ((0, 0), (0, 0), (0, 0))
    assert list(make_baseline(stripes, "noise", seed=1).getdata()) == list(make_baseline(stripes, "noise", seed=1).getdata())
