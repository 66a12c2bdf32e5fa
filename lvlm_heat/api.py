"""The Python API: load a model once, explain many pairs::

    from lvlm_heat import Explainer

    explainer = Explainer("llava-hf/llava-1.5-7b-hf")
    result = explainer.explain("photo.jpg", "What is the man holding?")
    result.saliency.shape, result.selected_tokens, result.deletion_auc
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from lvlm_heat.adapters import load_adapter
from lvlm_heat.config import ExplainConfig, ModelConfig, Precision, result_settings
from lvlm_heat.data.images import open_image
from lvlm_heat.data.pairs import Pair, Query, open_pair, pair_digest
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.record import ExplanationRecord, differences
from lvlm_heat.reporting.console import quiet_libraries
from lvlm_heat.reporting.outputs import read_finished, write_pair_outputs

log = logging.getLogger(__name__)


def content_id(image: Image.Image, question: str, answer: str | None = None) -> str:
    """A name for an in-memory pair: ``image_`` and 12 hex digits of a hash of its pixels, question and answer."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{image.mode} {image.size} {question!r} {answer!r}".encode())
    return f"image_{digest.hexdigest()[:12]}"


class Explainer:
    """A model loaded once, ready to explain image-question pairs.

    Args:
        model: Hub id, local folder saved with ``save_pretrained``, or a shipped demo model: ``"demo"``
            (LLaVA format, the default), ``"demo-qwen2-vl"`` or ``"demo-llava-l2"``; or a whole
            :class:`~lvlm_heat.config.ModelConfig`.
        precision: ``auto`` (bf16/fp16 on a GPU, fp32 on the CPU), ``fp32``, ``bf16`` or ``fp16``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        adapter: Import path of an adapter class, to override auto-detection.
        gradient_checkpointing: Recompute the model's activations in the backward pass (saves memory on large
            models, costs about one extra forward pass).
        config: Explanation settings (:class:`~lvlm_heat.config.ExplainConfig`).
    """

    def __init__(
        self,
        model: str | Path | ModelConfig = "demo",
        *,
        precision: Precision = "auto",
        device: str = "auto",
        adapter: str | None = None,
        gradient_checkpointing: bool = False,
        config: ExplainConfig | None = None,
    ) -> None:
        quiet_libraries()
        if not isinstance(model, ModelConfig):
            model = ModelConfig(str(model), adapter, precision, device, gradient_checkpointing)
        self.model = model
        self.adapter = load_adapter(model)
        self.config = config or ExplainConfig()

    def explain(
        self,
        image: str | Path | Image.Image | list[str | Path | Image.Image] | None,
        question: str,
        answer: str | None = None,
        *,
        video: str | Path | None = None,
        pair_id: str | None = None,
        output_dir: str | Path | None = None,
        **trainer_overrides: Any,
    ) -> ExplanationRecord:
        """Explain one pair; write ``output_dir/<pair_id>/`` (files and TensorBoard events) when ``output_dir``
        is given.

        ``pair_id`` defaults to the image file's stem, or for a PIL image to ``image_<hash>`` of the image,
        question and answer, so that explaining other pairs never overwrites earlier outputs; its
        file-name-safe form names the folder. A finished result already in that folder is returned as it is when
        it is this pair's with these settings (same image bytes, question, given answer, model and settings);
        otherwise the pair is explained again, saying what changed.

        ``image`` may be a list (a question about several images, each with a map of its own: ``record.images``),
        or ``None`` with ``video`` (a clip: a video file, an animated image or a folder of frames, sampled as
        ``config.video.frames`` says).

        Returns:
            An :class:`~lvlm_heat.record.ExplanationRecord`: ``saliency`` ``(H, W)`` over the original image,
            ``tokens`` with their LLR, ``deletion_auc``, ``insertion_auc``, the curves and the per-iteration
            loss ``history``.
        """
        if video is not None:
            if image is not None:
                raise LvlmHeatError("give an image (or several) or a video, not both")
            clip = Path(video)
            query = open_pair(Pair(pair_id or clip.stem, None, question, answer, video=clip),
                              frames=self.config.video.frames)
        else:
            opened = [(None, image, []) if isinstance(image, Image.Image) else (Path(image), *open_image(image))
                      for image in (image if isinstance(image, list) else [image])]
            (path, first, notes), rest = opened[0], opened[1:]
            pair_id = pair_id or (path.stem if path else content_id(first, question, answer))
            digest = "" if any(p is None for p, _, _ in opened) else \
                pair_digest(Pair(pair_id, path, question, extra_images=tuple(p for p, _, _ in rest)))
            query = Query(first, question, answer, pair_id, image_path=str(path) if path else None, image_notes=notes,
                          image_digest=digest, extra_images=[picture for _, picture, _ in rest],
                          extra_paths=[None if p is None else str(p) for p, _, _ in rest])
        folder = Path(output_dir) if output_dir is not None else None
        if folder is not None:
            finished = self._finished(folder / query.folder, query)
            if finished is not None:
                return finished
        record = explain_pair(self.adapter, query, self.config, log_dir=folder,
                              trainer_overrides=trainer_overrides or None)
        if folder is not None:
            write_pair_outputs(folder / record.folder, record)
        return record

    def _finished(self, folder: Path, query: Query) -> ExplanationRecord | None:
        """The finished record in ``folder`` when it is ``query``'s with this model and these settings."""
        record = read_finished(folder)
        if record is None:
            return None
        changed = differences(record, query.question, query.answer, query.image_digest)
        same_settings = result_settings(record.settings) == result_settings(asdict(self.config))
        if record.model != self.adapter.name or not same_settings:
            changed.append("model or settings")
        if changed:
            log.warning("[%s] its %s changed since the result in %s: explaining it again", query.pair_id,
                        " and ".join(changed), folder)
            return None
        record.image = query.image
        for part, picture in zip(record.images, query.images):
            part.image = picture
        return record
