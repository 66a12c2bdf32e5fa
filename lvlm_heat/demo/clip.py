"""The demo clip: a demo scene in which a red square slides in half-way, as a folder of frames.

``python -m lvlm_heat.demo.clip`` writes it to ``lvlm_heat/demo/pairs/clip/`` (shipped; the frames are a pure
function of the demo pair they start from). Asked "What color is the square?", the answer's evidence lies in the
frames that show the square, and nowhere before it enters.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from lvlm_heat.demo.synthetic import COLORS

FRAMES = 3
ENTERS = 1
"""The first frame that shows the square."""
SIDE = 26
"""The square's side, in pixels of the 128-pixel scene."""


def clip_frames(scene: Image.Image) -> list[Image.Image]:
    """``FRAMES`` frames of ``scene``: from frame :data:`ENTERS` on, a red square moves from the left edge rightwards
    along the top, clear of the scene's objects."""
    frames = []
    for k in range(FRAMES):
        frame = scene.convert("RGB")
        if k >= ENTERS:
            left = 6 + 30 * (k - ENTERS)
            ImageDraw.Draw(frame).rectangle([left, 8, left + SIDE - 1, 8 + SIDE - 1], fill=COLORS["red"])
        frames.append(frame)
    return frames


def square_boxes() -> list[tuple[int, int, int, int] | None]:
    """Per frame, the square's box ``(left, top, right, bottom)``, or ``None`` before it enters."""
    return [None if k < ENTERS else (6 + 30 * (k - ENTERS), 8, 6 + 30 * (k - ENTERS) + SIDE, 8 + SIDE)
            for k in range(FRAMES)]


def main() -> None:
    """Write the shipped clip (from demo pair 2: a green triangle and a blue circle, no square)."""
    pairs = Path(__file__).parent / "pairs"
    folder = pairs / "clip"
    folder.mkdir(exist_ok=True)
    for k, frame in enumerate(clip_frames(Image.open(pairs / "demo_2.png"))):
        frame.save(folder / f"frame_{k}.png")
    print(f"{FRAMES} frames in {folder}")


if __name__ == "__main__":
    main()
