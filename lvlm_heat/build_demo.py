"""Rebuild the shipped demo models: ``python -m lvlm_heat.build_demo [--family qwen2_vl]``.

``llava`` (default): a tiny ``LlavaForConditionalGeneration`` (64 px input, 8 px patches,
hidden size 128, 4 vision and 3 text layers, 1.7M parameters). ``qwen2_vl``: a tiny
``Qwen2VLForConditionalGeneration`` of the same widths with dynamic resolution (8 px
patches merged 2 x 2, a 48-96 px pixel budget). Both are trained from scratch on the
synthetic grounded VQA task of :mod:`lvlm_heat.demo.synthetic`, on a CPU.

A tiny LLaVA trained only on answer tokens stalls at chance on "the colour of the
named shape": its vision tower never learns shapes. Real LLaVAs start from a
pretrained CLIP, so this script does the same in miniature, in two stages:

1. the vision tower alone learns, for every patch, the colour and shape of the object
   covering it (two linear heads, discarded afterwards);
2. the whole model learns to answer, with the loss on the answer tokens only.

The word-level tokenizer, the processor and the chat template are built here and
saved with ``save_pretrained`` next to the weights, so the demo model loads through
exactly the code path of a user's checkpoint. Everything is seeded; with the same
library versions the build is reproducible.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvlm_heat.demo.synthetic import COLOR_NAMES, SHAPES, ask, make_scene

DEMO_DIR = Path(__file__).parent / "demo"
TRAIN_SEED, HELDOUT_SEED, PAIRS_SEED = 1, 2, 3
SCENE_SIZE = 128
INPUT_SIZE = 64
PATCH = 8

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %} "
    "{% else %}ASSISTANT: "
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

WORDS = (
    "user assistant : ? . , ! ' what which color colour shape is are the a an of object objects "
    "in on this that image picture there it and or to left right top bottom one how many yes no none "
    + " ".join(SHAPES)
    + " "
    + " ".join(COLOR_NAMES)
).split()


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer(specials: list[str], eos: str, image_token: str):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    extra = [t for t in specials if t not in ("<pad>", "<unk>", "<s>", eos)]
    if image_token != "<image>":  # chat-format markers must stay whole tokens
        backend.add_special_tokens(extra)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token=eos,
        extra_special_tokens={"image_token": image_token},
        additional_special_tokens=extra if image_token != "<image>" else None,
        padding_side="left",
    )


class LlavaDemo:
    """LLaVA-1.5 format: CLIP-style tower, resize + centre crop to 64 px, 64 image tokens."""

    name = "llava"
    out = DEMO_DIR / "llava_demo"
    steps = (1200, 1200)  # vision pretraining, answer training
    batch = 64
    image_token = "<image>"
    grid = INPUT_SIZE // PATCH  # image tokens per side

    def processor(self):
        from transformers import CLIPImageProcessor, LlavaProcessor

        tokenizer = _tokenizer(["<pad>", "<unk>", "<s>", "</s>", "<image>"], "</s>", "<image>")
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": INPUT_SIZE},
            crop_size={"height": INPUT_SIZE, "width": INPUT_SIZE},
            do_center_crop=True,
        )
        return LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=PATCH,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=LLAVA_CHAT_TEMPLATE,
        )

    def model(self, tokenizer):
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

        vision = CLIPVisionConfig(
            hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
            image_size=INPUT_SIZE, patch_size=PATCH, projection_dim=128,
        )
        text = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        config = LlavaConfig(
            vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            image_seq_length=self.grid**2, vision_feature_select_strategy="default", vision_feature_layer=-1,
        )
        return LlavaForConditionalGeneration(config)

    def tower(self, model):
        return model.model.vision_tower

    def pixels(self, processor, images):
        """Per-image pixel tensors, stacked on a first dimension."""
        return processor.image_processor(images, return_tensors="pt")["pixel_values"]

    def inputs(self, pixels, index) -> dict:
        return {"pixel_values": pixels[index]}

    def features(self, model, pixels, index):
        """``(B, grid * grid, D)`` vision features in raster order."""
        return self.tower(model)(pixel_values=pixels[index]).last_hidden_state[:, 1:]

    def save(self, processor, folder: Path) -> None:
        processor.save_pretrained(folder)

    def token_inputs(self, input_ids, image_id) -> dict:
        """Model inputs derived from the token ids (none for LLaVA)."""
        return {}


class QwenDemo(LlavaDemo):
    """Qwen2-VL format: dynamic resolution, 8 px patches merged 2 x 2 (36 tokens at 96 px)."""

    name = "qwen2_vl"
    out = DEMO_DIR / "qwen2_vl_demo"
    steps = (600, 900)  # 144 patches an image: four times LLaVA's cost per step
    batch = 48
    image_token = "<|image_pad|>"
    grid = 6  # a 128 px scene is resized to 96 px: 12 x 12 patches, 6 x 6 after merging

    def processor(self):
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

        from lvlm_heat.adapters.processors import build_processor

        specials = ["<pad>", "<unk>", "<s>", "<|im_end|>", "<|im_start|>", "<|vision_start|>", "<|vision_end|>",
                    "<|image_pad|>", "<|video_pad|>"]
        tokenizer = _tokenizer(specials, "<|im_end|>", "<|image_pad|>")
        image_processor = Qwen2VLImageProcessor(
            patch_size=PATCH, merge_size=2, temporal_patch_size=2,
            size={"shortest_edge": 48 * 48, "longest_edge": 96 * 96},
        )
        return build_processor(Qwen2VLProcessor, image_processor, tokenizer, chat_template=QWEN_CHAT_TEMPLATE)

    def model(self, tokenizer):
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
        config = Qwen2VLConfig(
            vision_config=dict(depth=4, embed_dim=128, hidden_size=128, num_heads=4, mlp_ratio=4, patch_size=PATCH,
                               spatial_merge_size=2, temporal_patch_size=2),
            text_config=dict(
                vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 10000.0},
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            ),
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        )
        return Qwen2VLForConditionalGeneration(config)

    def tower(self, model):
        return model.model.visual

    def pixels(self, processor, images):
        out = processor.image_processor(images, return_tensors="pt")
        self.grid_thw = out["image_grid_thw"][:1]
        return out["pixel_values"].view(len(images), -1, out["pixel_values"].shape[-1])

    def inputs(self, pixels, index) -> dict:
        return {"pixel_values": pixels[index].flatten(0, 1), "image_grid_thw": self.grid_thw.repeat(len(index), 1)}

    def features(self, model, pixels, index):
        merged = self.tower(model)(**self._visual_inputs(pixels, index)).pooler_output
        return merged.view(len(index), self.grid**2, -1)

    def _visual_inputs(self, pixels, index) -> dict:
        inputs = self.inputs(pixels, index)
        return {"hidden_states": inputs["pixel_values"], "grid_thw": inputs["image_grid_thw"]}

    def token_inputs(self, input_ids, image_id) -> dict:
        return {"mm_token_type_ids": (input_ids == image_id).long()}  # M-RoPE needs to know the image tokens

    def save(self, processor, folder: Path) -> None:
        from lvlm_heat.adapters.processors import save_processor

        save_processor(processor, folder)


FAMILIES = {family.name: family for family in (LlavaDemo(), QwenDemo())}


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


def _scenes(family, processor, seed: int, count: int):
    scenes = [make_scene(seed, i, SCENE_SIZE) for i in range(count)]
    return scenes, family.pixels(processor, [s.image for s in scenes])


def pretrain_vision(family, model, processor, steps: int, batch: int, log) -> None:
    """Stage 1: per-token colour and shape classification with throw-away heads."""
    scenes, pixels = _scenes(family, processor, TRAIN_SEED, 4000)
    labels = [_patch_labels(s.objects, family.grid) for s in scenes]
    colors = torch.from_numpy(np.stack([c for c, _ in labels])).flatten(1)
    shapes = torch.from_numpy(np.stack([s for _, s in labels])).flatten(1)
    tower = family.tower(model)
    width = model.config.text_config.hidden_size if family.name == "qwen2_vl" else tower.config.hidden_size
    heads = nn.Linear(width, len(COLOR_NAMES) + 1 + len(SHAPES) + 1)
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


def _prompt_ids(family, processor, question: str) -> list[int]:
    tokenizer = processor.tokenizer
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    at = ids.index(tokenizer.convert_tokens_to_ids(family.image_token))
    return ids[:at] + ids[at : at + 1] * family.grid**2 + ids[at + 1 :]


def _answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _examples(family, processor, seed: int, count: int, per_scene: int = 2, absent_share: float = 0.0):
    """Tokenised (prompt + answer) sequences with labels on the answer only.

    With ``absent_share``, that many extra questions name an object that is not visible
    and are answered ``none`` ("the circle is none", "the red object is a none"): half on
    images without any object (a bare background, or a scene blurred beyond recognition),
    half on scenes that hold other objects but not the named one. The model learns that
    its answer comes from the named object alone: no favourite colour or shape to fall back
    on, and no borrowing the colour of another object.
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


def _collate(family, rows, pixels, pad_id, image_id):
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


def _key_accuracy(family, model, pixels, rows, tokenizer) -> float:
    """Teacher-forced accuracy on the image-dependent word (the last word before end of answer)."""
    image_id = tokenizer.convert_tokens_to_ids(family.image_token)
    input_ids, attention, labels, pix = _collate(family, rows, pixels, tokenizer.pad_token_id, image_id)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention, **pix).logits
    lengths = attention.sum(1)
    positions = lengths - 3  # predicts the token before </s>
    predicted = logits[torch.arange(len(rows)), positions].argmax(-1)
    return (predicted == input_ids[torch.arange(len(rows)), positions + 1]).float().mean().item()


def train_answers(family, model, processor, steps: int, batch: int, log) -> None:
    """Stage 2: projector and language model on the answer tokens only, vision tower frozen.

    Freezing the pretrained tower (as LLaVA does while aligning its projector) keeps its
    shape and colour features intact while the randomly initialised language model's
    gradients are still large.
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


@torch.no_grad()
def heldout_accuracy(model, processor, count: int = 300) -> dict[str, float]:
    """Greedy answers on held-out scenes: exact-match accuracy per question kind."""
    correct = {"color": [], "shape": []}
    for i in range(count):
        scene = make_scene(HELDOUT_SEED, i, SCENE_SIZE)
        qa = ask(scene, HELDOUT_SEED, i)
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": qa.question}]}],
            add_generation_prompt=True,
        )
        inputs = processor(images=scene.image, text=prompt, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        correct[qa.kind].append(text.strip() == qa.answer)
    return {kind: float(np.mean(v)) for kind, v in correct.items()}


def _paint_out(image, box, objects):
    """``image`` with ``box`` filled by the mean colour of the background (outside every object)."""
    pixels = np.asarray(image).copy()
    background = np.ones(pixels.shape[:2], dtype=bool)
    for obj in objects:
        left, top, right, bottom = obj.box
        background[top:bottom, left:right] = False
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = pixels[background].mean(0).astype(np.uint8)
    from PIL import Image

    return Image.fromarray(pixels)


@torch.no_grad()
def evidence_check(model, processor, count: int = 100) -> dict[str, float]:
    """Mean probability of the answer's image word with the image, with the queried object
    painted out, and with another object painted out (held-out colour questions)."""
    tokenizer = processor.tokenizer
    probs = {"intact": [], "target_removed": [], "other_removed": []}
    for i in range(count):
        scene = make_scene(HELDOUT_SEED, 20_000 + i, SCENE_SIZE)
        qa = ask(scene, HELDOUT_SEED, 20_000 + i, kind="color")
        other = next(o for o in scene.objects if o != qa.target)
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": qa.question}]}],
            add_generation_prompt=True,
        )
        answer = tokenizer(" " + qa.answer, add_special_tokens=False)["input_ids"]
        for name, image in (
            ("intact", scene.image),
            ("target_removed", _paint_out(scene.image, qa.target.box, scene.objects)),
            ("other_removed", _paint_out(scene.image, other.box, scene.objects)),
        ):
            inputs = dict(processor(images=image, text=prompt, return_tensors="pt"))
            inputs.pop("attention_mask")
            tail = torch.tensor([answer[:-1]])
            inputs["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
            if "mm_token_type_ids" in inputs:
                inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(tail)], dim=1)
            logits = model(logits_to_keep=1, **inputs).logits
            probs[name].append(logits[0, -1].softmax(-1)[answer[-1]].item())
    return {name: float(np.mean(v)) for name, v in probs.items()}


def write_demo_pairs(out: Path, count: int = 4) -> None:
    """The handful of pairs ``python train.py`` explains by default."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pairs.jsonl", "w") as f:
        for i in range(count):
            scene = make_scene(PAIRS_SEED, i, SCENE_SIZE)
            qa = ask(scene, PAIRS_SEED, i, kind="color" if i % 2 == 0 else "shape")
            name = f"demo_{i}.png"
            scene.image.save(out / name)
            record = {"id": f"demo_{i}", "image": name, "question": qa.question, "bbox": list(qa.target.box)}
            f.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="llava", help="model format")
    parser.add_argument("--out", type=Path, default=None, help="where to save (default: the shipped folder)")
    parser.add_argument("--vision-steps", type=int, default=None, help="default: the family's")
    parser.add_argument("--answer-steps", type=int, default=None, help="default: the family's")
    parser.add_argument("--batch", type=int, default=None, help="default: the family's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check-only", action="store_true", help="only measure the saved model in --out")
    args = parser.parse_args(argv)
    family = FAMILIES[args.family]
    out = args.out or family.out
    args.vision_steps = args.vision_steps or family.steps[0]
    args.answer_steps = args.answer_steps or family.steps[1]
    args.batch = args.batch or family.batch
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - start:7.1f}s] {message}", flush=True)

    if args.check_only:
        from lvlm_heat.adapters import load_adapter

        adapter = load_adapter(str(out), precision="fp32", device="cpu")
        log(f"held-out accuracy: {heldout_accuracy(adapter.model, adapter.processor)}")
        log(f"probability of the colour word: {evidence_check(adapter.model, adapter.processor)}")
        return
    processor = family.processor()
    model = family.model(processor.tokenizer)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    log(f"{family.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    pretrain_vision(family, model, processor, args.vision_steps, args.batch, log)
    train_answers(family, model, processor, args.answer_steps, args.batch, log)
    accuracy = heldout_accuracy(model, processor)
    log(f"held-out accuracy: {accuracy}")
    evidence = evidence_check(model, processor)
    log(f"probability of the colour word: {evidence}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    family.save(processor, out)
    summary = {"family": family.name, "heldout_accuracy": accuracy, "colour_word_probability": evidence,
               "vision_steps": args.vision_steps, "answer_steps": args.answer_steps, "batch": args.batch,
               "seconds": round(time.time() - start)}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    write_demo_pairs(DEMO_DIR / "pairs")
    log(f"saved to {out}")


if __name__ == "__main__":
    main()
