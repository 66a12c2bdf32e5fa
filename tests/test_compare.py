"""Explainers compared (``--method a,b,...``): the summary's ``methods`` block and columns checked by hand, the
report's table, and a three-explainer run of the demo set in a real (headless) browser."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from chromium import Browser, browser_or_skip

from lvlm_heat.config import GradientConfig
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.record import EXPLAINED, ExplanationRecord, MethodMap, failed_record
from lvlm_heat.reporting.outputs import write_json_atomic
from lvlm_heat.reporting.report import write_report
from lvlm_heat.reporting.summary import SUMMARY_FIELDS, write_summary

# Four explained pairs (the last with an unstable normalisation) and one failure. Every value is exact in float32.
# Per pair: deletion AUC, insertion AUC, pointing hit, box mass, passes, seconds.
IGOS = [(0.25, 0.75, True, 0.5, 10, 2.0), (0.5, 0.75, True, 0.5, 10, 4.0), (0.25, 1.0, False, 0.5, 10, 6.0),
        (0.0, 0.0, True, 0.5, 10, 8.0)]
GRADIENT = [(0.5, 0.5, True, 0.25, 1, 0.5), (0.5, 0.75, False, 0.5, 1, 0.5), (1.0, 0.5, False, 0.75, 1, 0.5),
            (1.0, 1.0, False, None, 1, 0.5)]
FAST = ["--progress", "false", "--optim.iterations", "1", "--optim.ig_iter", "2", "--optim.curve_steps", "4",
        "--optim.mask_size", "8", "--occlusion.segments", "12", "--warm_start.depth", "0", "--select.rule", "llr"]


def _curve(auc: float) -> Curve:
    """A flat curve whose trapezoid AUC is ``auc`` exactly."""
    fractions = torch.linspace(0, 1, 5)
    return Curve(fractions, torch.full((5,), auc), torch.full((5,), auc))


def _map(method: str, values: tuple) -> MethodMap:
    deletion, insertion, hit, mass, passes, seconds = values
    return MethodMap(method, "" if method == "igos" else method, None, _curve(deletion), _curve(insertion),
                     pointing_hit=hit, box_mass=mass, passes=passes, seconds=seconds)


def _records(methods: tuple[str, ...] = ("igos", "gradient")) -> list[ExplanationRecord]:
    records = []
    for k, values in enumerate(zip(IGOS, GRADIENT)):
        maps = [_map(name, dict(zip(("igos", "gradient"), values))[name]) for name in methods]
        first = maps[0]
        records.append(ExplanationRecord(
            f"p{k}", "What color is it?", "red", EXPLAINED, folder=f"p{k}", deletion=first.deletion,
            insertion=first.insertion, p_image=0.9, p_baseline=0.1, unstable=k == 3, pointing_hit=first.pointing_hit,
            box_mass=first.box_mass, bbox=(0.0, 0.0, 4.0, 4.0), seconds=10.0, methods=maps))
    records.insert(2, failed_record("bad", "bad", "What?", "LvlmHeatError: image not found: gone.png"))
    return records


def _write_run(run_dir: Path, records: list[ExplanationRecord]) -> dict:
    for record in records:
        write_json_atomic(run_dir / record.folder / "result.json", record.to_dict())
    return write_summary(run_dir, records, {}, "hand")


def _page_data(path: Path) -> dict:
    blob = re.search(r"<script type='application/json' id='pairs-data'>(.*?)</script>", path.read_text(), re.DOTALL)
    return json.loads(blob.group(1))


def test_the_summary_compares_the_explainers_as_computed_by_hand(tmp_path):
    summary = _write_run(tmp_path / "run", _records())
    block = summary["methods"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["methods"] == block
    assert (block["reference"], block["level"], block["metrics"]) == \
        ("igos", 0.95, ["deletion_auc", "insertion_auc", "pointing_hit", "box_mass", "passes", "seconds"])
    igos, gradient = block["by_method"]["igos"], block["by_method"]["gradient"]
    assert list(block["by_method"]) == ["igos", "gradient"] and (igos["pairs"], gradient["pairs"]) == (4, 4)
    assert (igos["title"], gradient["title"]) == ("optimised mask (igos)", "gradient")
    assert "difference" not in igos["deletion_auc"]
    # AUCs: the unstable pair p3 is left out for both explainers, so n = 3 and 3 ** 3 = 27 resamples, all enumerated.
    # igos deletion [0.25, 0.5, 0.25]: a resample's mean is 0.25 + k / 12, k = how often it picks p1 (0.5);
    # k = 0, 1, 2, 3 in 8, 12, 6, 1 of the 27 resamples -> sorted means 8 x 3/12, 12 x 4/12, 6 x 5/12, 1 x 6/12.
    # 2.5% at position 0.025 * 26 = 0.65, between two 3/12: 0.25; 97.5% at 25.35, between index 25 (5/12) and
    # 26 (6/12): 5/12 + 0.35 / 12 = 5.35 / 12.
    assert igos["deletion_auc"] == {"mean": pytest.approx(1 / 3), "low": pytest.approx(0.25),
                                    "high": pytest.approx(5.35 / 12), "n": 3}
    # gradient - igos deletion, per pair: [0.25, 0, 0.75] = 0.25 x [1, 0, 3], whose 27 resample means are
    # (tests/test_statistics.py) 0, 1/3 x3, 2/3 x3, 1 x4, 4/3 x6, 5/3 x3, 2 x3, 7/3 x3, 3: 2.5% at 0.65 ->
    # 0.65 x 1/3 = 13/60, 97.5% at 25.35 -> 7/3 + 0.35 x 2/3 = 77/30; times 0.25: [13/240, 77/120], mean 1/3.
    assert gradient["deletion_auc"]["mean"] == pytest.approx(2 / 3)
    assert gradient["deletion_auc"]["difference"] == {"mean": pytest.approx(1 / 3), "low": pytest.approx(13 / 240),
                                                      "high": pytest.approx(77 / 120), "n": 3}
    assert igos["insertion_auc"]["mean"] == pytest.approx(2.5 / 3) and igos["insertion_auc"]["n"] == 3
    assert gradient["insertion_auc"]["difference"]["mean"] == pytest.approx(-0.75 / 3)  # [-0.25, 0, -0.5]
    # the rest count every explained pair, the unstable one too (n = 4)
    assert (igos["pointing_hit"]["mean"], gradient["pointing_hit"]["mean"]) == (0.75, 0.25)
    assert gradient["pointing_hit"]["difference"]["mean"] == -0.5 and gradient["pointing_hit"]["n"] == 4
    assert gradient["passes"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "n": 4,
                                  "difference": {"mean": -9.0, "low": -9.0, "high": -9.0, "n": 4}}
    assert (igos["seconds"]["mean"], gradient["seconds"]["difference"]["mean"]) == (5.0, -4.5)
    # a missing value drops that pair: gradient box mass [0.25, 0.5, 0.75], differences [-0.25, 0, 0.25]
    assert gradient["box_mass"]["mean"] == pytest.approx(0.5) and gradient["box_mass"]["n"] == 3
    assert gradient["box_mass"]["difference"]["mean"] == pytest.approx(0.0) and \
        gradient["box_mass"]["difference"]["n"] == 3


def test_the_csv_gets_each_explainer_s_columns_and_a_single_explainer_keeps_today_s(tmp_path):
    _write_run(tmp_path / "two", _records())
    with open(tmp_path / "two" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    added = ["igos_passes", "igos_seconds"] + [f"gradient_{name}" for name in
                                               ("deletion_auc", "insertion_auc", "pointing_hit", "box_mass", "passes",
                                                "seconds")]
    assert list(rows[0]) == [*SUMMARY_FIELDS, *added]
    assert [r["id"] for r in rows] == ["p0", "p1", "bad", "p2", "p3"]
    assert [rows[0][column] for column in added] == ["10", "2.0", "0.5", "0.5", "True", "0.25", "1", "0.5"]
    assert rows[4]["gradient_deletion_auc"] == "1.0" and rows[4]["gradient_box_mass"] == ""  # as they are
    assert all(rows[2][column] == "" for column in added)  # the failed pair has no maps
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["rows"][0]["gradient_passes"] == 1 and summary["rows"][0]["igos_seconds"] == 2.0

    single = _write_run(tmp_path / "one", _records(("igos",)))
    assert (tmp_path / "one" / "summary.csv").read_text().splitlines()[0] == ",".join(SUMMARY_FIELDS)
    assert set(single["rows"][0]) == set(SUMMARY_FIELDS)
    assert list(single["methods"]["by_method"]) == ["igos"]
    assert single["methods"]["by_method"]["igos"]["deletion_auc"]["high"] == pytest.approx(5.35 / 12)
    assert all("difference" not in part for part in single["methods"]["by_method"]["igos"].values()
               if isinstance(part, dict))


def test_the_report_tables_the_explainers_only_when_there_are_several(tmp_path):
    _write_run(tmp_path / "two", _records())
    page = write_report(tmp_path / "two").read_text()
    table = re.search(r"<table class='means explainers'>.*?</table>", page, re.DOTALL).group(0)
    headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.DOTALL)]
    assert headers[:4] == ["", "optimised mask (igos) (4 pairs)", "gradient (4 pairs)",
                           "gradient \u2212 optimised mask (igos)"]
    deletion = re.search(r"<th>deletion AUC.*?</tr>", table, re.DOTALL).group(0)
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                                       deletion, re.DOTALL)]
    # gradient deletion [0.5, 0.5, 1.0]: means 0.5 + k / 6 as above -> [0.5, 5/6 + 0.35/6] = [0.500, 0.892]
    assert cells == ["0.333 [0.250, 0.446]", "0.667 [0.500, 0.892]", "+0.333 [0.054, 0.642]"]
    pairs = _page_data(tmp_path / "two" / "report.html")["pairs"]
    assert [m["method"] for m in pairs[0]["methods"]] == ["igos", "gradient"]
    assert pairs[0]["methods"][1]["passes"] == 1 and pairs[0]["methods"][1]["overlay"] is None  # no file, no link
    assert pairs[2]["methods"] == []  # the failure

    _write_run(tmp_path / "one", _records(("igos",)))
    page = write_report(tmp_path / "one").read_text()
    assert "Explainers compared" not in page and "class='means explainers'" not in page
    assert all(p["methods"] == [] for p in _page_data(tmp_path / "one" / "report.html")["pairs"])


def test_three_explainers_on_the_demo_set_in_headless_chromium(tmp_path):
    from lvlm_heat.cli import main

    out = tmp_path / "run"
    methods = ["igos", "superpixel", "gradient"]
    summary = main(["--method", ",".join(methods), "--output_dir", str(out), "--data.limit", "2", *FAST])
    assert summary["explained"] == 2 and list(summary["methods"]["by_method"]) == methods
    assert summary["methods"]["by_method"]["gradient"]["passes"]["mean"] == GradientConfig().steps  # one group
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[len(SUMMARY_FIELDS):len(SUMMARY_FIELDS) + 3] == ["igos_passes", "igos_seconds",
                                                                   "superpixel_deletion_auc"]
    pairs = _page_data(out / "report.html")["pairs"]
    for pair in pairs:
        assert [m["method"] for m in pair["methods"]] == methods
        assert [m["overlay"] for m in pair["methods"]] == [f"{pair['folder']}/overlay.png",
                                                           f"{pair['folder']}/superpixel/overlay.png",
                                                           f"{pair['folder']}/gradient/overlay.png"]
    with Browser(browser_or_skip()) as browser:
        page = browser.open((out / "report.html").as_uri())
        assert page.count("article.pair") == 2 and page.count("div.methods figure") == 2 * 3
        assert page.evaluate("[...document.querySelectorAll('article.pair')[0].querySelectorAll('div.methods b')]"
                             ".map(b => b.textContent)") == ["optimised mask (igos)", "superpixel occlusion",
                                                             "gradient"]
        assert page.count("table.explainers tbody tr") == 6  # the demo pairs have boxes: every metric
        loaded = page.evaluate(  # lazy images below the fold load once asked to
            "Promise.all([...document.querySelectorAll('div.methods img')].map(i => { i.loading = 'eager';"
            " return i.complete ? null : new Promise(r => { i.onload = i.onerror = r; }); }))"
            ".then(() => [...document.querySelectorAll('div.methods img')].map(i => i.naturalWidth))")
        assert len(loaded) == 6 and all(width > 0 for width in loaded)
        assert page.errors() == []
