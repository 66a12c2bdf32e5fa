"""The shipped demo models and pairs, and the scene generator that made them.

``llava_demo/`` and ``qwen2_vl_demo/`` hold a tiny LLaVA and a tiny Qwen2-VL trained from scratch on the
synthetic grounded VQA task of :mod:`lvlm_heat.demo.synthetic`; ``pairs/`` holds the handful of
image-question pairs explained by default. ``python -m lvlm_heat.demo.build`` rebuilds them.

This module holds only their paths, so importing it stays cheap (no torch).
"""

from pathlib import Path

DEMO_DIR = Path(__file__).parent
DEMO_MODEL = DEMO_DIR / "llava_demo"  # the default model
DEMO_MODELS = {"demo": DEMO_MODEL, "demo-qwen2-vl": DEMO_DIR / "qwen2_vl_demo",
               "demo-llava-l2": DEMO_DIR / "llava_l2_demo"}  # names accepted as a model
DEMO_PAIRS = DEMO_DIR / "pairs" / "pairs.jsonl"
