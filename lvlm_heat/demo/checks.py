"""Held-out checks of a trained demo model: does it answer, and does its answer come from the queried object?

Both run on scenes of the held-out stream, through the model's own processor, so they measure a
freshly trained model and a saved one loaded back alike.
"""

from __future__ import annotations

import numpy as np
import torch

from lvlm_heat.demo.families import chat_prompt
from lvlm_heat.demo.synthetic import HELDOUT_SEED, SCENE_SIZE, ask, make_scene, paint_out


@torch.no_grad()
def heldout_accuracy(model, processor, count: int = 300) -> dict[str, float]:
    """Greedy answers on held-out scenes: exact-match accuracy per question kind.

    Args:
        model: The demo model.
        processor: Its processor.
        count: Held-out scenes, one question each.

    Returns:
        Accuracy by question kind, ``"color"`` and ``"shape"``.
    """
    correct = {"color": [], "shape": []}
    for i in range(count):
        scene = make_scene(HELDOUT_SEED, i, SCENE_SIZE)
        qa = ask(scene, HELDOUT_SEED, i)
        inputs = processor(images=scene.image, text=chat_prompt(processor, qa.question), return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        correct[qa.kind].append(text.strip() == qa.answer)
    return {kind: float(np.mean(v)) for kind, v in correct.items()}


@torch.no_grad()
def evidence_check(model, processor, count: int = 100) -> dict[str, float]:
    """Mean probability of the answer's image word on held-out colour questions, teacher-forced.

    A model that answers from the queried object loses the word when that object is painted
    out, and keeps it when another object is.

    Args:
        model: The demo model.
        processor: Its processor.
        count: Held-out scenes, one colour question each.

    Returns:
        The mean probability with the image ``"intact"``, with the queried object painted out
        (``"target_removed"``) and with another object painted out (``"other_removed"``).
    """
    tokenizer = processor.tokenizer
    probs = {"intact": [], "target_removed": [], "other_removed": []}
    for i in range(count):
        scene = make_scene(HELDOUT_SEED, 20_000 + i, SCENE_SIZE)
        qa = ask(scene, HELDOUT_SEED, 20_000 + i, kind="color")
        other = next(o for o in scene.objects if o != qa.target)
        boxes = [o.box for o in scene.objects]
        prompt = chat_prompt(processor, qa.question)
        answer = tokenizer(" " + qa.answer, add_special_tokens=False)["input_ids"]
        for name, image in (
            ("intact", scene.image),
            ("target_removed", paint_out(scene.image, qa.target.box, boxes)),
            ("other_removed", paint_out(scene.image, other.box, boxes)),
        ):
            inputs = dict(processor(images=image, text=prompt, return_tensors="pt"))
            inputs.pop("attention_mask")
            tail = torch.tensor([answer[:-1]])
            inputs["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
            if "mm_token_type_ids" in inputs:  # a per-token input (Qwen2-VL's) must cover the answer too
                inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(tail)], dim=1)
            logits = model(logits_to_keep=1, **inputs).logits
            probs[name].append(logits[0, -1].softmax(-1)[answer[-1]].item())
    return {name: float(np.mean(v)) for name, v in probs.items()}
