"""The interactive pages: written self-contained, then opened in a real browser (Debian's
chromium driven by Playwright) where they must load without a console error, render their
plots, show a candidate on hover and its layers on click; and optuna-dashboard serving a study."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from codesign.cli import main
from tests.codesign.test_cli import MODEL_PY

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by make (no browser download)

EXPERIMENT = {
    "name": "browser", "dataset": "digits", "accelerator": "default", "seed": 3,
    "model": {"widths": [4, 8], "strides": [1, 2], "kernel": 3},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.003},
    "search": {"trials": 4, "sampler": "random", "objectives": ["accuracy", "energy", "size"],
               "pretrain_epochs": 1, "epochs": 1, "eval_images": 40, "fidelity": "estimate",
               "space": {"depth": [2], "width": [2, 4, 8], "bits": [[8, 8], [2, 2], [1, 1]],
                         "classifier_bits": [[8, 8], [2, 8]],
                         "blocks": [{}, {"stride": [2]}]}},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real (small) search, measured with the estimator, and its report."""
    d = tmp_path_factory.mktemp("html")
    config = d / "browser.yaml"
    config.write_text(yaml.safe_dump(EXPERIMENT))
    assert main(["search", str(config), "--run-dir", str(d / "run")]) == 0
    return d / "run"


@pytest.mark.slow
def test_the_report_page_is_self_contained(run):
    page = (run / "report.html").read_text()
    assert "plotly" in page.lower() and "Plotly.newPlot" in page
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline, no CDN
    assert "name: browser" in page  # the run's config
    assert "report.html" in (run / "report.md").read_text()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: `make install` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    return page, errors


def _center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


@pytest.mark.slow  # the search behind the page (13 s)
@pytest.mark.browser
def test_the_report_in_a_real_browser(run, browser, tmp_path):
    trials = [t for t in json.loads((run / "trials.json").read_text())
              if t["state"] == "COMPLETE"]
    page, errors = _open(browser, run / "report.html")
    for plot in ("pareto-accuracy-energy", "pareto-accuracy-size", "pareto-energy-size"):
        page.wait_for_selector(f"#{plot} .scatterlayer .point")
        assert page.locator(f"#{plot} .scatterlayer .point").count() == len(trials)
    assert page.locator("#hypervolume .scatterlayer .point").count() == len(trials)
    # Hover a point: its trial and candidate; click it: its layers.
    point = page.locator("#pareto-accuracy-energy .scatterlayer .point").first
    x, y = _center(point)
    page.mouse.move(x, y)
    page.wait_for_selector(".hoverlayer .hovertext")
    hover = page.locator(".hoverlayer .hovertext").first.text_content()
    number = int(re.match(r"trial (\d+)", hover).group(1))
    trial = next(t for t in trials if t["number"] == number)
    description = "conv" + hover.split("conv", 1)[1].split("accuracy")[0]
    assert f"flatten fc {trial['candidate']['classifier_bits'][0]}/" in description
    page.mouse.click(x, y)
    page.wait_for_function("document.getElementById('details').dataset.trial !== undefined")
    assert page.locator("#details").get_attribute("data-trial") == str(number)
    rows = page.locator("#details table tr")
    assert rows.count() == 1 + len(trial["metrics"]["layers"])
    assert f"{trial['metrics']['layers'][0]['cycles']}" in rows.nth(1).text_content()
    shot = Path(os.environ.get("CODESIGN_SCREENSHOT", tmp_path / "report.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


@pytest.mark.browser
def test_an_evaluation_page_in_a_real_browser(tmp_path, browser):
    (tmp_path / "net.py").write_text(MODEL_PY)
    out = tmp_path / "eval.html"
    assert main(["evaluate", f"{tmp_path}/net.py:Net", "--accel", "default", "--fidelity",
                 "estimate", "--no-cache", "--plot", str(tmp_path / "e.png"),
                 "--json", str(tmp_path / "e.json"), "--html", str(out)]) == 0
    layers = json.loads((tmp_path / "e.json").read_text())["layers"]
    page, errors = _open(browser, out)
    page.wait_for_selector("#cycles .bars .point")
    assert page.locator("#cycles .bars .point").count() == len(layers)
    page.mouse.move(*_center(page.locator("#cycles .bars .point").first))
    page.wait_for_selector(".hoverlayer .hovertext")
    assert layers[0]["name"] in page.locator(".hoverlayer .hovertext").first.text_content()
    assert errors == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_dashboard_serves_the_study_with_its_figures(run):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "codesign", "dashboard", str(run),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        studies = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    studies = json.loads(r.read())["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.25)
        assert [s["study_name"] for s in studies] == ["browser"]
        sid = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}") as r:
            detail = json.loads(r.read())
        attrs = {a["key"]: a["value"] for a in detail["trials"][0]["user_attrs"]}
        assert {"candidate", "description", "metrics", "fidelity", "per_layer"} <= attrs.keys()
        assert "cycles" in attrs["per_layer"] and "bits" in attrs["per_layer"]
        assert detail["objective_names"] == ["accuracy (top-1)", "energy (nJ)", "size (bits)"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_report_and_dashboard_refuse_a_directory_without_a_study(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    assert main(["report", str(tmp_path)]) == 2
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "no study.db" in capsys.readouterr().err
    assert not (tmp_path / "study.db").exists()
