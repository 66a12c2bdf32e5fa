"""Where the shipped demo models and demo pairs live."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_MODEL = DEMO_DIR / "llava_demo"
DEMO_MODELS = {"demo": DEMO_MODEL, "demo-qwen2-vl": DEMO_DIR / "qwen2_vl_demo"}
DEMO_PAIRS = DEMO_DIR / "pairs" / "pairs.jsonl"
