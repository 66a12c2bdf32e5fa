"""Rebuild the shipped demo models: ``python -m lvlm_heat.demo.build [--family qwen2_vl]``.

``llava`` (default): a tiny ``LlavaForConditionalGeneration`` (64 px input, 8 px patches,
hidden size 128, 4 vision and 3 text layers, 1.7M parameters). ``qwen2_vl``: a tiny
``Qwen2VLForConditionalGeneration`` of the same widths with dynamic resolution (8 px
patches merged 2 x 2, a 48-96 px pixel budget). Both are trained from scratch on the
synthetic grounded VQA task of :mod:`lvlm_heat.demo.synthetic`, on a CPU, in the two stages
of :mod:`lvlm_heat.demo.training`, then measured by :mod:`lvlm_heat.demo.checks`.

The word-level tokenizer, the processor and the chat template (:mod:`lvlm_heat.demo.families`)
are saved with the weights, so the demo model loads through exactly the code path of a user's
checkpoint. The build also writes ``training.json`` (settings and checks) next to the weights,
and rewrites the demo pairs. Everything is seeded; with the same library versions the build is
reproducible. ``--check-only`` measures a saved model instead, in about a minute.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lvlm_heat.adapters.processors import save_processor
from lvlm_heat.demo import DEMO_PAIRS
from lvlm_heat.demo.checks import evidence_check, heldout_accuracy
from lvlm_heat.demo.families import FAMILIES
from lvlm_heat.demo.synthetic import PAIRS_SEED, SCENE_SIZE, ask, make_scene
from lvlm_heat.demo.training import pretrain_vision, train_answers


def write_demo_pairs(out: Path, count: int = 4) -> None:
    """The handful of pairs ``python train.py`` explains by default: images and ``pairs.jsonl`` in ``out``."""
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
    """Train one family's demo model and save it with its checks, or only check a saved one.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).
    """
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
    processor, model = family.untrained()
    log(f"{family.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    pretrain_vision(family, model, processor, args.vision_steps, args.batch, log)
    train_answers(family, model, processor, args.answer_steps, args.batch, log)
    accuracy = heldout_accuracy(model, processor)
    log(f"held-out accuracy: {accuracy}")
    evidence = evidence_check(model, processor)
    log(f"probability of the colour word: {evidence}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    save_processor(processor, out)
    summary = {"family": family.name, "heldout_accuracy": accuracy, "colour_word_probability": evidence,
               "vision_steps": args.vision_steps, "answer_steps": args.answer_steps, "batch": args.batch,
               "seconds": round(time.time() - start)}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    write_demo_pairs(DEMO_PAIRS.parent)
    log(f"saved to {out}")


if __name__ == "__main__":
    main()
