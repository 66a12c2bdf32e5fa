"""A model with a known answer: its only answer token depends on one box of the image.

It doubles as the worked example of a custom adapter for a model outside
``transformers``: a plain ``nn.Module`` behind the :class:`~lvlm_heat.adapters.Adapter`
interface.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from lvlm_heat.adapters import Adapter, LlavaAdapter, PreparedPair
from lvlm_heat.geometry import ViewWindow, sample_mask


class RedBoxModel(nn.Module):
    """``log p(answer) = log sigmoid(scale * (redness inside box - 0.3))``."""

    def __init__(self, box: tuple[int, int, int, int], scale: float = 20.0) -> None:
        super().__init__()
        self.box = box
        self.scale = nn.Parameter(torch.tensor(scale), requires_grad=False)

    def forward(self, pixels: Tensor) -> Tensor:  # (N, 3, H, W) in [0, 1] -> (N,)
        left, top, right, bottom = self.box
        region = pixels[:, :, top:bottom, left:right]
        redness = (region[:, 0] - region[:, 1:].mean(1)).mean((-1, -2))
        return F.logsigmoid(self.scale * (redness - 0.3))


class OneWordAdapter(Adapter):
    """Text side of the toys: the answer is always the single token "red"."""

    def generate(self, image, question, max_new_tokens):
        return torch.tensor([0])

    def encode_answer(self, answer):
        return torch.tensor([0])

    def token_texts(self, answer_ids):
        return ["red"], [False]


class RedBoxAdapter(OneWordAdapter):
    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.model = RedBoxModel(box)
        self.name = "red-box toy"

    def prepare(self, image, baseline, question, answer_ids) -> PreparedPair:
        def tensor(img: Image.Image) -> Tensor:
            return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]

        window = ViewWindow.full(image.height, image.width)
        prepared = PreparedPair(text={}, image={"pixels": tensor(image)}, baseline={"pixels": tensor(baseline)},
                                answer_ids=answer_ids, image_size=(image.height, image.width), geometry=window)
        prepared.guide = (prepared.image["pixels"], window)
        return prepared

    def project_mask(self, mask, prepared):
        return {"pixels": sample_mask(mask, prepared.geometry, prepared.image_size)[:, None]}

    def answer_log_probs(self, prepared, pixels):
        return self.model(pixels["pixels"].flatten(0, 1))[:, None]


def red_box_scene(size: int = 64, box: tuple[int, int, int, int] = (36, 8, 56, 28)) -> Image.Image:
    """Grey noise with a red square at ``box`` and a green one elsewhere."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(90, 160, size=(size, size, 3)).astype(np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (220, 30, 30)
    pixels[40:58, 6:24] = (30, 200, 40)
    return Image.fromarray(pixels)


class ColourWordsAdapter(RedBoxAdapter):
    """Answer "red green": "red" depends only on the redness inside ``red_box``, "green" only on the
    greenness inside ``green_box`` (the red and green squares of :func:`red_box_scene`)."""

    def __init__(self, red_box=(36, 8, 56, 28), green_box=(6, 40, 24, 58)) -> None:
        self.boxes, self.name = (red_box, green_box), "colour-words toy"
        self.model = nn.Linear(1, 1).requires_grad_(False)  # the device and dtype

    def generate(self, image, question, max_new_tokens):
        return torch.tensor([0, 1])

    def token_texts(self, answer_ids):
        return [" red", " green"], [False, False]

    def answer_log_probs(self, prepared, pixels):
        images = pixels["pixels"].flatten(0, 1)
        scores = []
        for channel, (left, top, right, bottom) in enumerate(self.boxes):
            region = images[:, :, top:bottom, left:right]
            others = region[:, [c for c in range(3) if c != channel]].mean(1)
            scores.append(F.logsigmoid(20 * ((region[:, channel] - others).mean((-1, -2)) - 0.3)))
        return torch.stack(scores, dim=1)


class TwoEncoderNet(nn.Module):
    """A research-style model outside ``transformers`` with two vision encoders.

    A coarse encoder sees the image at 16 px, a fine one at 64 px; the answer's
    log-probability adds what each sees of the redness inside ``box`` (in 64 px units).
    """

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box
        self.coarse_weight = nn.Parameter(torch.tensor(10.0), requires_grad=False)
        self.fine_weight = nn.Parameter(torch.tensor(10.0), requires_grad=False)

    @staticmethod
    def _redness(pixels: Tensor, box: tuple[int, int, int, int]) -> Tensor:
        left, top, right, bottom = box
        region = pixels[:, :, top:bottom, left:right]
        return (region[:, 0] - region[:, 1:].mean(1)).mean((-1, -2))

    def forward(self, coarse: Tensor, fine: Tensor) -> Tensor:  # (N, 3, 16, 16), (N, 3, 64, 64) -> (N,)
        quarter = tuple(v // 4 for v in self.box)
        score = self.coarse_weight * (self._redness(coarse, quarter) - 0.3) + self.fine_weight * (
            self._redness(fine, self.box) - 0.3
        )
        return F.logsigmoid(score)


class TwoEncoderAdapter(OneWordAdapter):
    """The worked example of docs/models.md's "Add your own model": a plain ``nn.Module``, two encoders.

    ``--adapter toy.TwoEncoderAdapter --model FOLDER`` loads ``FOLDER/config.json`` (``{"box": [...]}``).
    """

    VIEWS = {"coarse": 16, "fine": 64}

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        self.model = TwoEncoderNet(box)
        self.name = "two-encoder toy"

    @classmethod
    def load(cls, model: str, dtype: torch.dtype, device: torch.device) -> TwoEncoderAdapter:
        import json
        from pathlib import Path

        adapter = cls(tuple(json.loads((Path(model) / "config.json").read_text())["box"]))
        adapter.model.to(device=device, dtype=dtype)
        adapter.name = model
        return adapter

    def prepare(self, image, baseline, question, answer_ids) -> PreparedPair:
        def views(img: Image.Image) -> dict[str, Tensor]:
            out = {}
            for key, side in self.VIEWS.items():
                array = np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.float32) / 255
                out[key] = torch.from_numpy(array).permute(2, 0, 1)[None]
            return out

        windows = {key: ViewWindow.full(image.height, image.width).resize(side, side) for key, side in self.VIEWS.items()}
        prepared = PreparedPair(text={}, image=views(image), baseline=views(baseline), answer_ids=answer_ids,
                                image_size=(image.height, image.width), geometry=windows)
        prepared.guide = (prepared.image["fine"], windows["fine"])
        return prepared

    def project_mask(self, mask, prepared):
        return {key: sample_mask(mask, window, prepared.image_size)[:, None] for key, window in prepared.geometry.items()}

    def answer_log_probs(self, prepared, pixels):
        return self.model(pixels["coarse"].flatten(0, 1), pixels["fine"].flatten(0, 1))[:, None]


class NaNAdapter(TwoEncoderAdapter):
    """A broken model: its log-probabilities are NaN."""

    def answer_log_probs(self, prepared, pixels):
        return super().answer_log_probs(prepared, pixels) * float("nan")


class StoppedLlava(LlavaAdapter):
    """A LLaVA that kills its own process with SIGKILL (as an out-of-memory killer or a preempted node
    would) when it starts preparing pair number ``$STOP_AT_PAIR`` (1-based), and runs normally when that
    variable is unset. Makes a kill land at a known point, whatever the machine's speed."""

    prepared = 0

    def prepare(self, *args, **kwargs):
        type(self).prepared += 1
        if str(type(self).prepared) == os.environ.get("STOP_AT_PAIR"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().prepare(*args, **kwargs)


class ImageListAdapter(RedBoxAdapter):
    """Several images in one question: the answer "red" depends on the redness inside ``box`` of whichever image
    is reddest there (``log sigmoid(scale (max_k redness_k - 0.3))``), so the evidence follows the picture, not
    its place in the list. The images' tensors lie side by side along dim 0, as LLaVA's do."""

    def __init__(self, box: tuple[int, int, int, int] = (36, 8, 56, 28)) -> None:
        super().__init__(box)
        self.name = "image-list toy"

    def prepare_images(self, images, baselines, question, answer_ids) -> PreparedPair:
        from lvlm_heat.adapters.base import side_by_side

        parts = [self.prepare(image, baseline, question, answer_ids) for image, baseline in zip(images, baselines)]
        both = {side: {"pixels": torch.cat([getattr(part, side)["pixels"] for part in parts])}
                for side in ("image", "baseline")}
        prepared = PreparedPair(text={}, image=both["image"], baseline=both["baseline"], answer_ids=answer_ids,
                                image_size=parts[0].image_size, parts=parts)
        prepared.part_dims = side_by_side(prepared.image, [part.image for part in parts], self.name)
        prepared.guide = parts[0].guide
        return prepared

    def answer_log_probs(self, prepared, pixels):
        images = pixels["pixels"]  # (N, K, 3, H, W)
        left, top, right, bottom = self.model.box
        region = images[..., top:bottom, left:right]
        redness = (region[:, :, 0] - region[:, :, 1:].mean(2)).mean((-1, -2))  # (N, K)
        return F.logsigmoid(self.model.scale * (redness.amax(1) - 0.3))[:, None]


def plain_scene(size: int = 64, seed: int = 1) -> Image.Image:
    """Grey noise with a green square and nothing red: a picture without the toy's evidence."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(90, 160, size=(size, size, 3)).astype(np.uint8)
    pixels[40:58, 6:24] = (30, 200, 40)
    return Image.fromarray(pixels)
