"""Images as a viewer shows them: EXIF orientation, 16-bit / float greyscale, transparency, CMYK (built here)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from lvlm_heat.data import BACKGROUND, load_image, open_image
from lvlm_heat.errors import LvlmHeatError

RED = (255, 0, 0)


def _encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _saved(tmp_path, image: Image.Image, name: str, **params):
    path = tmp_path / name
    image.save(path, **params)
    return path


def _pixel(image: Image.Image, xy: tuple[int, int]) -> np.ndarray:
    return np.asarray(image)[xy[1], xy[0]].astype(int)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_first(tmp_path, fmt):
    # Stored 40 wide, 20 high, a red square in the stored top-left corner. Orientation 6 means "turn 90 degrees
    # clockwise to display": a viewer shows a 20 x 40 image with the square in its top-right corner.
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _saved(tmp_path, stored, f"photo.{fmt.lower()}", format=fmt, exif=exif.tobytes(), **(
        {"quality": 95} if fmt == "JPEG" else {}))
    image, notes = open_image(path)
    assert image.size == (20, 40) and image.mode == "RGB"
    assert np.abs(_pixel(image, (15, 4)) - RED).max() < 40  # the square where the viewer shows it
    assert np.abs(_pixel(image, (4, 4)) - (0, 0, 255)).max() < 40 and np.abs(_pixel(image, (15, 35)) - RED).max() > 100
    assert notes == ["EXIF orientation 6 applied"]
    assert load_image(path).size == (20, 40)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 257).round().astype(np.uint16), (4, 1))
    path = _saved(tmp_path, Image.fromarray(gradient), "depth.png")
    assert Image.open(path).mode == "I;16"
    image, notes = open_image(path)
    values = np.asarray(image)
    assert image.mode == "RGB" and (values[..., 0] == values[..., 2]).all()
    assert values[0, 0, 0] == 0 and values[0, -1, 0] == 255 and abs(int(values[0, 128, 0]) - 128) <= 1
    assert values.mean() < 200  # today's convert("RGB") makes it all white
    assert notes == ["16-bit greyscale scaled to 8 bits"]


def test_big_endian_16_bit_greyscale():
    image = Image.frombytes("I;16B", (3, 1), np.array([0, 32768, 65535], dtype=">u2").tobytes())
    loaded, notes = open_image(_encoded(image, "TIFF"))
    assert np.asarray(loaded)[0, :, 0].tolist() == [0, 128, 255] and notes == ["16-bit greyscale scaled to 8 bits"]


@pytest.mark.parametrize(("values", "expected", "note"), [
    ([0, 100, 255], [0, 100, 255], None),
    ([0, 32768, 65535], [0, 128, 255], "32-bit greyscale with 16-bit values scaled to 8 bits"),
    ([-10, 0, 10], [0, 128, 255], "I greyscale stretched from [-10, 10] to 8 bits"),
])
def test_32_bit_integer_greyscale(values, expected, note):
    loaded, notes = open_image(_encoded(Image.fromarray(np.array([values], dtype=np.int32)), "TIFF"))
    assert np.asarray(loaded)[0, :, 0].tolist() == expected and notes == ([note] if note else [])


@pytest.mark.parametrize(("values", "expected", "note"), [
    ([0.0, 0.5, 1.0], [0, 128, 255], "float greyscale scaled from [0, 1] to 8 bits"),
    ([0.0, 2.0, 4.0], [0, 128, 255], "float greyscale scaled from [0, 4] to 8 bits"),
])
def test_float_greyscale(values, expected, note):
    image = Image.fromarray(np.array([values], dtype=np.float32))
    assert image.mode == "F"
    loaded, notes = open_image(_encoded(image, "TIFF"))
    assert np.asarray(loaded)[0, :, 0].tolist() == expected and notes == [note]


def test_rgba_transparency_is_composited_on_white(tmp_path):
    data = np.zeros((10, 20, 4), dtype=np.uint8)
    data[:, 10:] = (0, 0, 255, 255)  # right: opaque blue; left: transparent black
    data[0, 0] = (255, 0, 0, 128)  # half-transparent red
    image, notes = open_image(_saved(tmp_path, Image.fromarray(data, "RGBA"), "cutout.png"))
    assert _pixel(image, (5, 5)).tolist() == list(BACKGROUND) == [255, 255, 255]
    assert _pixel(image, (15, 5)).tolist() == [0, 0, 255]
    assert np.abs(_pixel(image, (0, 0)) - (255, 127, 127)).max() <= 1
    assert notes == ["transparency composited on white"]
    opaque = data.copy()
    opaque[..., 3] = 255
    assert open_image(_saved(tmp_path, Image.fromarray(opaque, "RGBA"), "opaque.png"))[1] == []


def test_la_transparency_is_composited_on_white(tmp_path):
    data = np.zeros((10, 20, 2), dtype=np.uint8)
    data[:, 10:] = (100, 255)
    image, notes = open_image(_saved(tmp_path, Image.fromarray(data, "LA"), "grey.png"))
    assert _pixel(image, (5, 5)).tolist() == [255, 255, 255] and _pixel(image, (15, 5)).tolist() == [100, 100, 100]
    assert notes == ["transparency composited on white"]


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (20, 10))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (10, 0, 20, 10))  # right half: palette entry 1, green
    image, notes = open_image(_saved(tmp_path, palette, "icon.png", transparency=1))
    assert _pixel(image, (5, 5)).tolist() == [255, 0, 0] and _pixel(image, (15, 5)).tolist() == [255, 255, 255]
    assert notes == ["transparency composited on white"]
    gif, gif_notes = open_image(_saved(tmp_path, palette, "icon.gif", transparency=1))
    assert _pixel(gif, (15, 5)).tolist() == [255, 255, 255] and gif_notes == ["transparency composited on white"]
    plain, plain_notes = open_image(_saved(tmp_path, palette, "plain.png"))
    assert _pixel(plain, (15, 5)).tolist() == [0, 255, 0] and plain_notes == []


def test_rgb_with_a_transparent_colour(tmp_path):
    data = np.zeros((10, 20, 3), dtype=np.uint8)
    data[:, 10:] = (0, 0, 255)
    image, notes = open_image(_saved(tmp_path, Image.fromarray(data), "keyed.png", transparency=(0, 0, 0)))
    assert _pixel(image, (5, 5)).tolist() == [255, 255, 255] and _pixel(image, (15, 5)).tolist() == [0, 0, 255]
    assert notes == ["transparency composited on white"]


def test_cmyk_is_converted_and_says_so(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (128, 0, 0, 128))
    image, notes = open_image(_saved(tmp_path, cmyk, "print.tif"))
    assert image.mode == "RGB" and np.abs(_pixel(image, (1, 1)) - (63, 127, 127)).max() <= 1
    assert notes == ["CMYK converted to RGB"]
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _, profiled = open_image(_saved(tmp_path, cmyk, "profiled.tif", icc_profile=srgb))
    assert profiled == ["CMYK converted to RGB (its embedded colour profile not applied)"]


def test_plain_rgb_and_greyscale_are_unchanged(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image, notes = open_image(_saved(tmp_path, Image.fromarray(data), "plain.png"))
    assert notes == [] and (np.asarray(image) == data).all()
    grey, grey_notes = open_image(_saved(tmp_path, Image.fromarray(data[..., 0]), "grey.png"))
    assert grey_notes == [] and (np.asarray(grey)[..., 1] == data[..., 0]).all()


def test_animation_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image, notes = open_image(path)
    assert _pixel(image, (1, 1)).tolist() == [255, 0, 0] and notes == ["first of 2 frames used"]


def test_unusable_sources_are_one_line_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    truncated = _encoded(Image.new("RGB", (64, 64), RED), "PNG")[:60]
    cases = [(tmp_path / "missing.png", "image not found"), (tmp_path, "is a folder"),
             (tmp_path / "notes.png", "cannot read image"), (truncated, "cannot read image embedded image"),
             (None, "no image given")]
    for source, message in cases:
        with pytest.raises(LvlmHeatError, match=message) as caught:
            open_image(source)
        assert "\n" not in str(caught.value)
