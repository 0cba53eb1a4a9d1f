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


def write_results(stem: str, results: dict, plot) -> None:
    """bench/results/<stem>.json and <stem>.png (`plot(results, path)`)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{stem}.json").write_text(json.dumps(results, indent=1))
    plot(results, OUT / f"{stem}.png")
    print(f"wrote {OUT / f'{stem}.json'}, {OUT / f'{stem}.png'}")
