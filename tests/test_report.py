"""``report.html``, the answer strip, the correctness split of the summary, notebook display, the templates
they are rendered from, and the report in a real (headless) browser."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from chromium import REQUIRE_ENV, Browser, browser_or_skip, find_chromium
from conftest import textured_image
from PIL import Image

from lvlm_heat.metrics import box_mass, pointing_hit
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.record import EXPLAINED, FAILED, NOT_GROUNDED, ExplanationRecord, TokenScore, WordMap, failed_record
from lvlm_heat.reporting.outputs import write_json_atomic, write_pair_outputs
from lvlm_heat.reporting.report import read_run, write_report
from lvlm_heat.reporting.strip import llr_colour, strip_html, strip_markdown
from lvlm_heat.reporting.summary import correctness_split, summary_row, write_summary

ROOT = Path(__file__).parents[1]
PAIRS = 100
WITH_FILES = (0, 1, 2, 3, 7, 9)
"""Pairs whose figures are drawn (the others get their ``result.json`` only: drawing 100 takes 40 s)."""


def _tokens(words: list[str], llrs: list[float], selected: list[bool]) -> list[TokenScore]:
    tokens = [TokenScore(k, (" " if k else "") + w, -0.1, -0.1 - llr, False, selected=s)
              for k, (w, llr, s) in enumerate(zip(words, llrs, selected))]
    return [*tokens, TokenScore(len(tokens), "</s>", -0.01, -0.01, True)]


def _curve(auc_like: float, insertion: bool) -> Curve:
    fractions = torch.linspace(0, 1, 11)
    normalized = 1 - torch.exp(-fractions / auc_like) if insertion else torch.exp(-fractions / auc_like)
    return Curve(fractions, 0.01 + 0.9 * normalized, normalized)


def _blob(height: int, width: int, row: float, column: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.exp(-((y - row) ** 2 + (x - column) ** 2) / 40.0).astype(np.float32)


def _plausibility(saliency: np.ndarray, box) -> tuple[bool, float]:
    return pointing_hit(torch.from_numpy(saliency), box), box_mass(torch.from_numpy(saliency), box)


def _pair(k: int, image: Image.Image) -> ExplanationRecord:
    """Pair ``k`` of the synthetic run: every 10th from the 8th is not grounded, every 3rd is a miss, every
    4th answer is wrong; pairs 0 and 1 have per-word maps."""
    correct = k % 4 != 3
    answer = "the circle is red" if correct else "the circle is blue"
    grounded = k % 10 != 7
    tokens = _tokens(answer.split(), [0.0, 0.3 * k % 2, 0.0, 5.0 if grounded else 0.2],
                     [False, False, False, grounded])
    explanation = ExplanationRecord(
        f"pair_{k:03d}", "What color is the circle?", answer, EXPLAINED if grounded else NOT_GROUNDED, tokens,
        folder=f"pair_{k:03d}", bbox=(4.0, 4.0, 24.0, 20.0), reference="red", model="synthetic",
        answer_match="normalised" if correct else None, image=image, seconds=1.0 + k / 10,
        reliance={"log_p_image": -0.5, "log_p_baseline": -6.0, "log_p_no_image": -0.6 if k % 5 == 0 else -9.0},
    )
    if grounded:
        hit = k % 3 != 0
        explanation.saliency = _blob(image.height, image.width, *((12, 14) if hit else (36, 50)))
        explanation.deletion, explanation.insertion = _curve(0.05 + k / 250, False), _curve(0.05 + k / 400, True)
        explanation.p_image, explanation.p_baseline = 0.9, 0.01
        explanation.pointing_hit, explanation.box_mass = _plausibility(explanation.saliency, explanation.bbox)
    if grounded and k < 2:
        explanation.tokens[1].selected = explanation.tokens[3].selected = True
        explanation.words = [
            WordMap(1, "circle", [1], _blob(image.height, image.width, 12, 14), _curve(0.1, False), _curve(0.1, True),
                    0.8, 0.1),
            WordMap(3, explanation.answer.split()[-1], [3], explanation.saliency, explanation.deletion,
                    explanation.insertion, 0.9, 0.01),
        ]
        for word in explanation.words:
            word.pointing_hit, word.box_mass = _plausibility(word.saliency, explanation.bbox)
    return explanation


def _failure(k: int) -> ExplanationRecord:
    """A failed pair's record, as the dataset run writes it."""
    return failed_record(f"pair_{k:03d}", f"pair_{k:03d}", "What?", "LvlmHeatError: image not found: gone.png",
                         "red", 0.01)


def write_synthetic_run(run_dir: Path, count: int = PAIRS, drawn: tuple[int, ...] = WITH_FILES) -> list[ExplanationRecord]:
    """A dataset run's folder of ``count`` pairs (every 10th from the 10th failed), with its summary; the
    pairs ``drawn`` get their figures too."""
    from lvlm_heat.dataset_run import DatasetMetrics

    image = textured_image(48, 64)
    metrics, records = DatasetMetrics(sync=False), []
    for k in range(count):
        folder = run_dir / f"pair_{k:03d}"
        record = _failure(k) if k % 10 == 9 else _pair(k, image)
        if k in drawn and record.status != FAILED:
            write_pair_outputs(folder, record)
        else:
            write_json_atomic(folder / "result.json", record.to_dict())
        metrics.update(record)
        records.append(record)
    write_summary(run_dir, records, metrics.compute(), "synthetic")
    return records


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("synthetic") / "run"
    write_synthetic_run(run_dir)
    write_report(run_dir)
    return run_dir


def _page_data(path: Path) -> dict:
    page = path.read_text()
    blob = re.search(r"<script type='application/json' id='pairs-data'>(.*?)</script>", page, re.DOTALL).group(1)
    return json.loads(blob)


def _expected(k: int) -> dict:
    failed, grounded = k % 10 == 9, k % 10 != 7
    return {"status": FAILED if failed else EXPLAINED if grounded else NOT_GROUNDED,
            "hit": None if failed or not grounded else k % 3 != 0, "correct": None if failed else k % 4 != 3}


def test_answer_strip_colours_tokens_by_llr_and_marks_the_explained_ones():
    tokens = _tokens(["the", "<b>circle</b>", "is", "red"], [0.0, -3.0, 0.0, 8.0], [False, False, False, True])
    page = strip_html(tokens)
    spans = re.findall(r'<span class="tok( sel)?" style="background:#(\w{6});[^"]*" title="([^"]*)">([^<]*)</span>', page)
    assert [s[3] for s in spans] == ["the", "&lt;b&gt;circle&lt;/b&gt;", "is", "red"]  # escaped; </s> left out
    colours = {s[3]: tuple(int(s[1][i:i + 2], 16) for i in (0, 2, 4)) for s in spans}
    assert colours["red"] == (0x67, 0x00, 0x1f)  # LLR +8: the darkest red of RdBu_r (saturated)
    assert colours["&lt;b&gt;circle&lt;/b&gt;"][2] > colours["&lt;b&gt;circle&lt;/b&gt;"][0]  # LLR -3: blue
    assert min(colours["the"]) > 230  # LLR 0: near white
    assert [s[0] for s in spans] == ["", "", "", " sel"] and spans[3][2] == "LLR +8.00, explained"
    assert llr_colour(100.0) == llr_colour(4.0) and llr_colour(None) == (0.85, 0.85, 0.85)


def test_strip_figures_are_drawn_without_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from lvlm_heat.reporting.strip import strip_figure\n"
        "from lvlm_heat.reporting.figures import figure_to_array\n"
        "tokens = [{'text': w, 'llr': l, 'selected': s, 'special': False} for w, l, s in "
        "[('the', 0.0, False), (' red', 9.0, True), (' blue', -9.0, False)] * 12]\n"
        "pixels = figure_to_array(strip_figure(tokens, width_in=4)).astype(int)\n"
        "red = ((pixels[..., 0] > 90) & (pixels[..., 2] < 60)).sum(); blue = ((pixels[..., 2] > 60) & (pixels[..., 0] < 30)).sum()\n"
        "print(pixels.shape[0], pixels.shape[1], red > 100, blue > 100, 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    height, width, red, blue, pyplot = out
    assert int(width) == 400 and int(height) > 100  # 36 tokens wrap to several lines of a 4-inch strip
    assert (red, blue, pyplot) == ("True", "True", "False")


def test_summary_splits_the_scores_by_correct_and_wrong_answers(tmp_path):
    records = write_synthetic_run(tmp_path / "run", count=20, drawn=())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = summary["rows"]
    assert [r["correct"] for r in rows] == [_expected(k)["correct"] for k in range(20)]
    split = summary["by_correctness"]
    for name, wanted in (("correct", True), ("wrong", False)):
        chosen = [r for r in records if r.status == EXPLAINED and r.correct is wanted]
        assert split[name]["explained"] == len(chosen)
        assert split[name]["deletion_auc"]["mean"] == pytest.approx(np.mean([r.deletion_auc for r in chosen]))
        assert split[name]["insertion_auc"]["mean"] == pytest.approx(np.mean([r.insertion_auc for r in chosen]))
        hits = [r.pointing_hit for r in chosen]
        assert split[name]["pointing_game"] == {"count": sum(hits), "of": len(hits), "share": sum(hits) / len(hits)}
        assert split[name]["box_mass"]["mean"] == pytest.approx(np.mean([r.box_mass for r in chosen]))
    assert split["wrong"]["pairs"] == 4 and split["correct"]["pairs"] == 14  # 3, 7, 11, 15 wrong; 9, 19 failed
    assert summary["correct"] == {"count": 14, "of": 18, "share": 14 / 18}
    assert summary["reliance"]["answered_without_image"] == {"count": 4, "of": 18, "share": 4 / 18}  # 0, 5, 10, 15
    header = (tmp_path / "run" / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"correct", "no_image_ratio", "answered_without_image"} <= set(header)
    # without references there is nothing to split; a record from before 'correct' existed still says
    assert correctness_split([summary_row(replace(r, reference=None)) for r in records]) is None
    old = {"status": EXPLAINED, "reference": "red", "answer_match": None}
    assert ExplanationRecord.from_dict(old).correct is False
    assert ExplanationRecord.from_dict({**old, "answer_match": "exact"}).correct is True


def test_report_of_a_100_pair_run(synthetic_run):
    page = (synthetic_run / "report.html").read_text()
    data = _page_data(synthetic_run / "report.html")
    pairs = data["pairs"]
    assert [p["id"] for p in pairs] == [f"pair_{k:03d}" for k in range(PAIRS)]
    assert [(p["status"], p["pointing_hit"], p["correct"]) for p in pairs] == \
        [tuple(_expected(k).values()) for k in range(PAIRS)]
    for k, pair in enumerate(pairs):  # figures by relative path, only where the file exists
        assert (pair["images"]["overlay"] is not None) == (k in WITH_FILES and _expected(k)["status"] == EXPLAINED)
        for path in [*pair["images"].values(), *(w["overlay"] for w in pair["words"])]:
            assert path is None or (synthetic_run / path).is_file()
    assert [w["word"] for w in pairs[0]["words"]] == ["circle", "red"] and pairs[0]["images"]["words"] == \
        "pair_000/words.png"
    assert pairs[3]["tokens"][3][:4] == ["blue", "#67001f", True, True]  # LLR 5 saturates; explained
    assert pairs[9]["status"] == FAILED and "image not found" in pairs[9]["reason"]
    explained = [r for r in read_run(synthetic_run) if r.status == EXPLAINED]
    mean = np.mean([r.deletion_auc for r in explained])
    assert f"<td>{mean:.3f}</td>" in page  # the dataset mean at the top
    assert page.count("<svg") == 4 and "Focus versus correctness" in page  # 3 histograms and the pointing game
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)  # offline: nothing fetched from anywhere


def test_report_of_a_run_stopped_before_its_summary(synthetic_run, tmp_path):
    import shutil

    run_dir = tmp_path / "stopped"
    shutil.copytree(synthetic_run, run_dir)
    (run_dir / "summary.json").unlink()
    shutil.rmtree(run_dir / "pair_050")
    data = _page_data(write_report(run_dir))
    assert len(data["pairs"]) == PAIRS - 1 and data["pairs"][50]["id"] == "pair_051"


def test_report_command_gives_one_line_for_a_bad_folder(tmp_path, capsys):
    from lvlm_heat.cli import main, report

    result = subprocess.run([sys.executable, "-m", "lvlm_heat", "report", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "nowhere is missing" in result.stderr
    (tmp_path / "stray").mkdir()
    with pytest.raises(SystemExit) as exit_status:
        main([str(tmp_path)], report, "lvlm-heat report")
    error = capsys.readouterr().err
    assert exit_status.value.code == 1 and error.count("\n") == 1 and "holds no results" in error


def test_notebook_display_of_an_explanation():
    from matplotlib.figure import Figure

    from lvlm_heat.reporting.notebook import explanation_figure, explanation_html

    image = textured_image(48, 64)
    explained = _pair(1, image)
    page = explained._repr_html_()
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(png))).size == (64, 48)
    assert f"{explained.deletion_auc:.3f}" in page and f"{explained.insertion_auc:.3f}" in page
    assert page.count('class="tok sel"') == 2 and ">hit<" in page
    assert f"deletion {explained.words[0].deletion.auc:.3f}" in page  # each word's scores
    figure = explanation_figure(explained)
    assert isinstance(figure, Figure) and len(figure.axes) == 4 + 2 + 1  # image, map, curves, strip; two words; scale
    assert figure.axes[2].get_label() == "<colorbar>" and "saliency" in figure.axes[2].get_ylabel()
    grounded_nowhere = _pair(7, image)
    assert "no heatmap" in explanation_html(grounded_nowhere)
    assert len(explanation_figure(grounded_nowhere).axes) == 1  # the strip only


def test_tensorboard_gets_the_answer_strip(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from lvlm_heat.reporting.tensorboard import log_answer_strip

    writer = SummaryWriter(str(tmp_path))
    log_answer_strip(writer, _tokens(["the", "circle", "is", "red"], [0.0, 0.1, 0.0, 6.0], [False] * 3 + [True]))
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0}).Reload()
    assert "answer/strip" in events.Tags()["images"]
    text = events.Tensors("answer/tokens/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "**red +6.00**" in text and "circle +0.10" in text


def test_strip_markdown_is_the_text_tensorboard_gets():
    tokens = _tokens(["the", "circle", "is", "red"], [0.0, 0.1, -1.25, 6.0], [False, True, False, True])
    tokens.insert(2, {"text": " unscored", "llr": None, "selected": False, "special": False})
    assert strip_markdown(tokens) == \
        "the +0.00 **circle +0.10** is -1.25 **red +6.00**  \n(LLR per token; **bold** = explained)"
    assert strip_markdown([]) == "  \n(LLR per token; **bold** = explained)"
    assert strip_markdown([{"text": "a&b<i>", "llr": 1.0}]).startswith("a&b<i> +1.00")  # markdown: not escaped

    class Writer:  # what log_answer_strip sends to TensorBoard
        def add_image(self, *args, **kwargs):
            pass

        def add_text(self, tag, text, step):
            self.text = text

    from lvlm_heat.reporting.tensorboard import log_answer_strip

    writer = Writer()
    log_answer_strip(writer, tokens)
    assert strip_markdown(tokens) == writer.text


def test_report_and_notebook_show_the_same_strip(synthetic_run):
    from lvlm_heat.reporting.notebook import explanation_html

    explained = _pair(1, textured_image(48, 64))
    strip = _page_data(synthetic_run / "report.html")["pairs"][1]["strip"]
    assert strip == strip_html(explained.tokens) and strip in explanation_html(explained)  # one renderer
    assert strip.count('class="tok sel"') == 2 and strip.count('class="tok"') == 2


def test_markup_in_the_data_is_escaped_everywhere(tmp_path):
    from lvlm_heat.reporting.notebook import explanation_html

    hostile = "<img src=x onerror=\"window.pwned=1\">"
    tokens = [{"text": text, "log_prob_image": -0.1, "log_prob_baseline": -0.1 - llr, "selected": selected}
              for text, llr, selected in (("<script>", 2.0, True), (" &", -1.0, False), (" " + hostile, 0.0, False))]
    run_dir = tmp_path / "run"
    write_json_atomic(run_dir / "run.json", {"identity": {"model": "<script>window.pwned=1</script> & co"}})
    write_json_atomic(run_dir / "p" / "result.json", {"id": "p", "status": NOT_GROUNDED, "tokens": tokens,
                                                      "question": f"<script>x</script> & {hostile}"})
    page = write_report(run_dir).read_text()
    assert page.count("<script") == 2 and "<img" not in page  # the data blob and the page's script only
    assert "model &lt;script&gt;window.pwned=1&lt;/script&gt; &amp; co;" in page
    strip = _page_data(run_dir / "report.html")["pairs"][0]["strip"]
    assert ">&lt;script&gt;</span> <span" in strip and ">&amp;</span>" in strip and "<img" not in strip
    explanation = _pair(7, textured_image(48, 64))
    explanation.question, explanation.tokens = f"<script>x</script> & {hostile}", tokens
    notebook = explanation_html(explanation)
    assert "<script" not in notebook and "<img" not in notebook and "&lt;script&gt;x&lt;/script&gt; &amp; " in notebook
    if find_chromium() is None and not os.environ.get(REQUIRE_ENV):
        return
    with Browser(browser_or_skip()) as browser:
        page = browser.open((run_dir / "report.html").as_uri())
        assert page.evaluate("[...document.querySelectorAll('.tok')].map(t => t.textContent)") == \
            ["<script>", "&", hostile]
        assert page.evaluate("document.querySelector('.q').textContent") == f"Q<script>x</script> & {hostile}"
        assert page.evaluate("window.pwned === undefined && document.querySelectorAll('main img').length === 0")
        assert page.errors() == []


def test_templates_are_package_data_found_through_the_package():
    from importlib.resources import files

    from jinja2 import PackageLoader

    from lvlm_heat.reporting.templates import ENVIRONMENT

    names = ["charts.svg.j2", "explanation.html.j2", "report.css", "report.html.j2", "report.js", "strip.html.j2"]
    assert isinstance(ENVIRONMENT.loader, PackageLoader) and ENVIRONMENT.loader.package_name == "lvlm_heat.reporting"
    assert all((files("lvlm_heat.reporting") / "templates" / name).is_file() for name in names)
    assert set(names) <= set(ENVIRONMENT.list_templates())
    assert all(ENVIRONMENT.autoescape(name) for name in names if name.endswith(".j2"))
    assert Path(ENVIRONMENT.get_template("strip.html.j2").filename).parent == Path(files("lvlm_heat.reporting")) / \
        "templates"


def test_report_in_headless_chromium(synthetic_run, tmp_path):
    expected = [_expected(k) for k in range(PAIRS)]
    with Browser(browser_or_skip()) as browser:
        page = browser.open((synthetic_run / "report.html").as_uri())
        assert page.count("article.pair") == 50  # one page of cards
        shot = page.screenshot(tmp_path / "report.png")
        page.click("button.next")
        assert page.evaluate("[...document.querySelectorAll('article.pair h2 a')].map(a => a.textContent)") == \
            [f"pair_{k:03d}" for k in range(50, 100)]
        page.click("button.filter[data-group='status'][data-value='failed']")
        assert page.count("article.pair") == sum(e["status"] == FAILED for e in expected) == 10
        assert page.count("article.pair.failed") == 10 and page.count(".reason") == 10
        page.click("button.filter[data-group='status'][data-value='explained']")
        page.click("button.filter[data-group='pointing'][data-value='miss']")
        misses = sum(e["status"] == EXPLAINED and e["hit"] is False for e in expected)
        assert page.count("article.pair") == misses and page.count(".badge.miss") == misses
        page.click("button.filter[data-group='answer'][data-value='wrong']")
        wrong_misses = sum(e["status"] == EXPLAINED and e["hit"] is False and e["correct"] is False for e in expected)
        assert page.count("article.pair") == wrong_misses
        page.click("button.filter[data-group='status'][data-value='all']")
        page.click("button.filter[data-group='pointing'][data-value='all']")
        page.click("button.filter[data-group='answer'][data-value='all']")
        page.click("select#sort")
        page.evaluate("(() => { const s = document.getElementById('sort'); s.value = 'deletion_asc';"
                      " s.dispatchEvent(new Event('change')); })()")
        first = page.evaluate("document.querySelector('article.pair h2 a').textContent")
        assert first == "pair_000"  # the sharpest deletion curve
        page.click("details.words summary")  # per-word maps open and load
        page.evaluate("new Promise(r => setTimeout(r, 300))")
        broken = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth === 0).length")
        opened = "[...document.querySelectorAll('details.words[open] img')].filter(i => i.naturalWidth > 0).length"
        assert broken == 0 and page.evaluate(opened) == 3  # words.png and the two words' overlays
        assert page.errors() == []
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (900, 1280, 3) and pixels.std() > 20  # a rendered page, not a blank one


def test_a_run_writes_its_report_and_a_resumed_run_rewrites_it(tiny_llava, tmp_path):
    from lvlm_heat.cli import main

    image = tmp_path / "street.png"
    textured_image(45, 70).save(image)
    out = tmp_path / "run"
    command = ["--model", tiny_llava, "--image", str(image), "--question", "What color is the circle?",
               "--answer", "the circle is red", "--output_dir", str(out), "--select.rule", "all", "--min_gap", "0",
               "--maps", "per_word", "--progress", "false", "--optim.iterations", "2", "--optim.ig_iter", "3",
               "--optim.curve_steps", "6", "--optim.mask_size", "8"]
    main(command)
    pair = _page_data(out / "report.html")["pairs"][0]
    record = json.loads((out / "street" / "result.json").read_text())
    assert pair["id"] == "street" and pair["status"] == EXPLAINED
    assert pair["deletion_auc"] == pytest.approx(record["deletion_auc"])
    assert [t[0] for t in pair["tokens"]] == ["the", "circle", "is", "red"]
    assert [w["word"] for w in pair["words"]] == [w["word"] for w in record["words"]]
    assert math.isclose(pair["reliance"]["log_p_image"], record["reliance"]["log_p_image"])
    (out / "report.html").unlink()
    main(command)  # resumed: the pair is read back, the report written again
    assert _page_data(out / "report.html")["pairs"][0]["deletion_auc"] == pytest.approx(record["deletion_auc"])
    if find_chromium() is None and not os.environ.get(REQUIRE_ENV):
        return
    with Browser(browser_or_skip()) as browser:
        page = browser.open((out / "report.html").as_uri())
        assert page.count("article.pair") == 1 and page.count(".figs img") == 2  # overlay and curves
        assert page.count("details.words img") == 1 + len(record["words"])  # words.png and one overlay each
        page.evaluate("new Promise(r => setTimeout(r, 300))")
        assert page.evaluate("[...document.querySelectorAll('.figs img')].every(i => i.naturalWidth > 0)")
        assert page.errors() == []
