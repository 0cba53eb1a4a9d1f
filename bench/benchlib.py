"""What the benchmarks share: models trained once and kept, results written with their plot."""

from __future__ import annotations

import json
import time
from pathlib import Path

from codesign.models import Candidate, build_model
from codesign.search import load_model, save_model
from codesign.train import TrainConfig, train

OUT = Path(__file__).resolve().parent / "results"


def cached_model(path: Path, cand: Candidate, data, cfg: TrainConfig):
    """The model trained at `path` (a rerun measures without training), or trained and kept
    there; with the seconds training took (None when loaded)."""
    if path.exists():
        return load_model(path, data.classes), None
    start = time.time()
    model = train(build_model(cand, data.x_train.shape[1:], data.classes), data, cfg)
    save_model(model, path)
    took = time.time() - start
    print(f"  trained {path.stem} in {took:.0f} s: {cand.describe()}", flush=True)
    return model, took


def stamp(results: dict) -> dict:
    """The results with when and at which commit they were measured (`measured`)."""
    import subprocess
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=OUT.parent, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, cwd=OUT.parent).stdout)
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"measured": {"commit": commit + ("+changes" if dirty else ""),
                         "date": time.strftime("%Y-%m-%d %H:%M %Z")}, **results}


def write_results(stem: str, results: dict, plot) -> None:
    """bench/results/<stem>.json (stamped with the commit and date) and <stem>.png
    (`plot(results, path)`)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{stem}.json").write_text(json.dumps(stamp(results), indent=1))
    plot(results, OUT / f"{stem}.png")
    print(f"wrote {OUT / f'{stem}.json'}, {OUT / f'{stem}.png'}")
