"""The two training stages of a demo model, on the synthetic grounded VQA task, on a CPU.

A tiny LLaVA trained only on answer tokens stalls at chance on "the colour of the named
shape": its vision tower never learns shapes. Real LLaVAs start from a pretrained CLIP, so
the demo models do the same in miniature:

1. :func:`pretrain_vision`: the vision tower alone learns, for every image token, the colour
   and shape of the object covering it (two linear heads, discarded afterwards);
2. :func:`train_answers`: the whole model but its tower learns to answer, with the loss on
   the answer tokens only.

Both stages take the family (:mod:`lvlm_heat.demo.families`), which says how to feed the model
images; everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvlm_heat.demo.families import DemoFamily, chat_prompt
from lvlm_heat.demo.synthetic import COLOR_NAMES, HELDOUT_SEED, SCENE_SIZE, SHAPES, TRAIN_SEED, ask, make_scene


def _patch_labels(objects, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-token colour and shape class (0 = background) on a ``grid x grid`` layout, from the boxes."""
    cell = SCENE_SIZE / grid
    colors = np.zeros((grid, grid), dtype=np.int64)
    shapes = np.zeros((grid, grid), dtype=np.int64)
    for obj in objects:
        left, top, right, bottom = obj.box
        for row in range(grid):
            for col in range(grid):
                overlap_y = max(0.0, min(bottom, (row + 1) * cell) - max(top, row * cell))
                overlap_x = max(0.0, min(right, (col + 1) * cell) - max(left, col * cell))
                if overlap_x * overlap_y >= 0.4 * cell * cell:
                    colors[row, col] = COLOR_NAMES.index(obj.color) + 1
                    shapes[row, col] = SHAPES.index(obj.shape) + 1
    return colors, shapes


def _scenes(family: DemoFamily, processor, seed: int, count: int):
    """The first ``count`` scenes of stream ``seed`` and their preprocessed images."""
    scenes = [make_scene(seed, i, SCENE_SIZE) for i in range(count)]
    return scenes, family.pixels(processor, [s.image for s in scenes])


def pretrain_vision(family: DemoFamily, model, processor, steps: int, batch: int, log: Callable[[str], None]) -> None:
    """Stage 1: per-token colour and shape classification with throw-away heads.

    Args:
        family: The model's format.
        model: The untrained model; only its vision tower changes.
        processor: The model's processor.
        steps: Optimiser steps.
        batch: Scenes a step.
        log: Receives a progress line every 100 steps.
    """
    scenes, pixels = _scenes(family, processor, TRAIN_SEED, 4000)
    labels = [_patch_labels(s.objects, family.grid) for s in scenes]
    colors = torch.from_numpy(np.stack([c for c, _ in labels])).flatten(1)
    shapes = torch.from_numpy(np.stack([s for _, s in labels])).flatten(1)
    tower = family.tower(model)
    heads = nn.Linear(family.feature_width(model), len(COLOR_NAMES) + 1 + len(SHAPES) + 1)
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    tower.train()
    for step in range(steps):
        idx = torch.randint(len(scenes), (batch,), generator=generator)
        logits = heads(family.features(model, pixels, idx))
        split = len(COLOR_NAMES) + 1
        loss = F.cross_entropy(logits[..., :split].flatten(0, 1), colors[idx].flatten()) + F.cross_entropy(
            logits[..., split:].flatten(0, 1), shapes[idx].flatten()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            with torch.no_grad():
                acc = (logits[..., split:].argmax(-1) == shapes[idx]).float().mean().item()
            log(f"vision step {step:5d} loss {loss.item():.3f} patch-shape acc {acc:.3f}")


def _prompt_ids(family: DemoFamily, processor, question: str) -> list[int]:
    """The prompt's token ids with the image token already expanded to the family's image tokens."""
    tokenizer = processor.tokenizer
    ids = tokenizer(chat_prompt(processor, question), add_special_tokens=False)["input_ids"]
    at = ids.index(tokenizer.convert_tokens_to_ids(family.image_token))
    return ids[:at] + ids[at : at + 1] * family.grid**2 + ids[at + 1 :]


def _answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _examples(family: DemoFamily, processor, seed: int, count: int, per_scene: int = 2, absent_share: float = 0.0):
    """Tokenised (prompt + answer) sequences with labels on the answer only.

    With ``absent_share``, that many extra questions name an object that is not visible
    and are answered ``none`` ("the circle is none", "the red object is a none"): half on
    images without any object (a bare background, or a scene blurred beyond recognition),
    half on scenes that hold other objects but not the named one. The model learns that
    its answer comes from the named object alone: no favourite colour or shape to fall back
    on, and no borrowing the colour of another object.

    Returns:
        ``(pixels, rows)``: the preprocessed images, and one ``(image index, prompt ids, answer ids)`` a question.
    """
    from PIL import ImageFilter

    scenes, pixels = _scenes(family, processor, seed, count)
    tokenizer = processor.tokenizer
    rows = []
    for i, scene in enumerate(scenes):
        for j, kind in enumerate(("color", "shape")[:per_scene]):
            qa = ask(scene, seed, i * 2 + j, kind)
            rows.append((i, _prompt_ids(family, processor, qa.question), _answer_ids(tokenizer, qa.answer)))
    extra = int(count * absent_share)
    if extra:
        rng = np.random.default_rng([seed, 7])
        empty = [
            make_scene(seed, count + b, SCENE_SIZE, max_objects=0).image
            if b % 2 == 0
            else scenes[b].image.filter(ImageFilter.GaussianBlur(float(rng.uniform(6, 20))))
            for b in range(extra // 2)
        ]
        pixels = torch.cat([pixels, family.pixels(processor, empty)])
        for b in range(extra):
            if b < len(empty):  # nothing visible
                index, present = count + b, set()
            else:  # other objects visible, not the named one
                index = int(rng.integers(count))
                present = scenes[index].objects
            kind = "color" if b % 2 == 0 else "shape"
            names = SHAPES if kind == "color" else COLOR_NAMES
            taken = {o.shape if kind == "color" else o.color for o in present}
            missing = [name for name in names if name not in taken]
            if not missing:
                continue
            name = missing[int(rng.integers(len(missing)))]
            question, answer = (
                (f"What color is the {name}?", f"the {name} is none")
                if kind == "color"
                else (f"What shape is the {name} object?", f"the {name} object is a none")
            )
            rows.append((index, _prompt_ids(family, processor, question), _answer_ids(tokenizer, answer)))
    return pixels, rows


def _collate(family: DemoFamily, rows, pixels, pad_id: int, image_id: int):
    """Right-padded ``(input_ids, attention_mask, labels, image and token inputs)`` of ``rows``."""
    length = max(len(p) + len(a) for _, p, a in rows)
    input_ids = torch.full((len(rows), length), pad_id)
    labels = torch.full((len(rows), length), -100)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for r, (_, prompt, answer) in enumerate(rows):
        seq = prompt + answer
        input_ids[r, : len(seq)] = torch.tensor(seq)
        labels[r, len(prompt) : len(seq)] = torch.tensor(answer)
        attention[r, : len(seq)] = 1
    extra = {**family.inputs(pixels, [i for i, _, _ in rows]), **family.token_inputs(input_ids, image_id)}
    return input_ids, attention, labels, extra


def _key_accuracy(family: DemoFamily, model, pixels, rows, tokenizer) -> float:
    """Teacher-forced accuracy on the image-dependent word (the last word before end of answer)."""
    image_id = tokenizer.convert_tokens_to_ids(family.image_token)
    input_ids, attention, _, pix = _collate(family, rows, pixels, tokenizer.pad_token_id, image_id)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention, **pix).logits
    lengths = attention.sum(1)
    positions = lengths - 3  # predicts the word before the end token
    predicted = logits[torch.arange(len(rows)), positions].argmax(-1)
    return (predicted == input_ids[torch.arange(len(rows)), positions + 1]).float().mean().item()


def train_answers(family: DemoFamily, model, processor, steps: int, batch: int, log: Callable[[str], None]) -> None:
    """Stage 2: projector and language model on the answer tokens only, vision tower frozen.

    Freezing the pretrained tower (as LLaVA does while aligning its projector) keeps its
    shape and colour features intact while the randomly initialised language model's
    gradients are still large.

    Args:
        family: The model's format.
        model: The model after :func:`pretrain_vision`; left in eval mode.
        processor: The model's processor.
        steps: Optimiser steps.
        batch: Questions a step.
        log: Receives a progress line, with the held-out key-word accuracy, every 100 steps.
    """
    pixels, rows = _examples(family, processor, TRAIN_SEED, 10000, absent_share=0.2)
    held_pixels, held_rows = _examples(family, processor, HELDOUT_SEED, 128)
    image_id = processor.tokenizer.convert_tokens_to_ids(family.image_token)
    tower = family.tower(model)
    tower.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(0)
    model.train()
    tower.eval()
    for step in range(steps):
        chosen = [rows[k] for k in rng.integers(len(rows), size=batch)]
        input_ids, attention, labels, pix = _collate(family, chosen, pixels, processor.tokenizer.pad_token_id, image_id)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels, **pix).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            model.eval()
            accuracy = _key_accuracy(family, model, held_pixels, held_rows, processor.tokenizer)
            model.train()
            tower.eval()
            log(f"answer step {step:5d} loss {loss.item():.4f} held-out key-word accuracy {accuracy:.3f}")
    tower.requires_grad_(True)
    model.eval()
