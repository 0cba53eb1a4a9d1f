"""The block-wise segmentation search's report: `report.md` with the must-show figures, the
finetuned models, per-layer cycles on the RTL, phase times, and two plots (the fronts in mIoU
against size and cycles; the predictor against finetuned mIoU); `report.html`, the same
interactive (plotly inline, offline; hover a point: its blocks)."""

from __future__ import annotations

import json
from pathlib import Path


def _plots(run_dir: Path, results: dict, summary: dict) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "size_bits", "size (KiB)"),
                              (axes[1], "cycles", "cycles per image")):
        for group, colour in (("teacher", "black"), ("int8", "tab:blue"), ("mixed", "tab:red")):
            pts = [n for n in names if n.startswith(group)]
            scale = 1 / 8 / 1024 if metric == "size_bits" else 1
            ax.scatter([results[n][metric] * scale for n in pts],
                       [results[n]["miou"] for n in pts], c=colour, label=group,
                       marker="*" if group == "teacher" else "o", s=120 if group == "teacher"
                       else 30)
        ax.set_xlabel(label)
        ax.set_ylabel("mIoU (integer semantics)")
        ax.legend()
    fig.tight_layout()
    out = ["fronts.png"]
    fig.savefig(run_dir / out[0], dpi=110)
    plt.close(fig)
    pred = summary.get("predictor")
    if pred:
        fig, ax = plt.subplots(figsize=(5, 4))
        loss, miou = zip(*pred["points"])
        ax.scatter(loss, miou)
        ax.set_xlabel("predicted: sum of block NSR")
        ax.set_ylabel("finetuned mIoU")
        ax.set_title(f"Kendall tau {pred['kendall_tau']:.3f}")
        fig.tight_layout()
        fig.savefig(run_dir / "predictor.png", dpi=110)
        plt.close(fig)
        out.append("predictor.png")
    return out


def write_seg_page(run_dir: Path, results: dict, found: dict, summary: dict) -> Path:
    """report.html: finetuned models in mIoU against size and cycles, the table's fronts in
    predicted loss against cost, the predictor; every text from the run escaped."""
    import html

    import plotly.graph_objects as go

    from codesign.html_report import _figure, _page, _table

    body = ["<h1>Block-wise QA-NAS for segmentation</h1>"]
    figs, first = [], True
    for metric, label in (("size_bits", "size (bits)"), ("cycles", "cycles per image")):
        fig = go.Figure()
        for group in ("teacher", "int8", "mixed"):
            pts = [n for n in results if n.startswith(group)]
            fig.add_trace(go.Scatter(
                x=[results[n][metric] for n in pts], y=[results[n]["miou"] for n in pts],
                mode="markers", name=group, text=[f"{n}: {', '.join(results[n]['blocks'])}"
                                                  for n in pts],
                marker={"size": 14 if group == "teacher" else 9,
                        "symbol": "star" if group == "teacher" else "circle"}))
        fig.update_layout(title=f"finetuned: mIoU vs {label}", xaxis_title=label,
                          yaxis_title="mIoU (integer semantics)", width=560, height=420)
        figs.append(_figure(fig, f"models_{metric}", first))
        first = False
    for space, cost in (("int8", "cycles"), ("mixed", "size_bits")):
        front = found["fronts"].get(space, [])
        fig = go.Figure(go.Scatter(x=[p[cost] for p in front], y=[p["loss"] for p in front],
                                   mode="markers+lines", text=[", ".join(p["blocks"])
                                                               for p in front]))
        fig.update_layout(title=f"table front, {space}: predicted loss vs {cost}",
                          xaxis_title=cost, yaxis_title="sum of block NSR", width=560,
                          height=420)
        figs.append(_figure(fig, f"front_{space}", False))
    body.append("<div class=\"figs\">" + "".join(f"<div>{f}</div>" for f in figs) + "</div>")
    pred = summary.get("predictor")
    if pred:
        body.append(f"<p>Kendall tau of the predictor against finetuned mIoU over "
                    f"{summary['models']} models: {pred['kendall_tau']:.3f}</p>")
    body.append("<h2>Models</h2>" + _table(
        ["model", "mIoU", "cycles", "energy (uJ)", "size (KiB)", "blocks"],
        [[n, f"{r['miou']:.4f}", r["cycles"], f"{r['energy_j'] * 1e6:.2f}",
          f"{r['size_bits'] / 8 / 1024:.1f}", ", ".join(r["blocks"])]
         for n, r in results.items()]))
    body.append("<h2>Summary</h2><pre>" + html.escape(
        json.dumps({k: v for k, v in summary.items() if k != "rtl"}, indent=1)) + "</pre>")
    path = Path(run_dir) / "report.html"
    path.write_text(_page("block-wise segmentation search", body))
    return path


def write_seg_report(run_dir: Path, results: dict, found: dict, summary: dict) -> Path:
    run_dir = Path(run_dir)
    t = results["teacher"]
    lines = ["# Block-wise QA-NAS for segmentation", ""]
    pred = summary.get("predictor")
    if pred:
        lines.append(f"- predictor (mIoU from summed block NSR) over {summary['models']} "
                     f"finetuned models: Kendall tau **{pred['kendall_tau']:.3f}**")
    for key, what, figure in (("smaller", "mixed precision within 0.5 point of the teacher",
                               "size_reduction"),
                              ("faster", "INT8 within 0.5 point of the teacher",
                               "cycle_reduction")):
        if key in summary:
            lines.append(f"- {what}: **{summary[key]}**, {summary[figure]:.1%} "
                         f"{'smaller' if key == 'smaller' else 'fewer cycles'}")
        else:
            lines.append(f"- {what}: none reached")
    for key, figure in (("smallest_mixed", "size_reduction"),
                        ("fastest_int8", "cycle_reduction")):
        if key in summary:
            s = summary[key]
            lines.append(f"- best reached ({key.replace('_', ' ')}): {s['name']}, "
                         f"{s[figure]:.1%} less at {100 * s['miou_loss']:+.2f} points mIoU loss")
    for m, what in (("cycles", "cycles"), ("size_bits", "size")):
        e = summary.get(f"additive_{m}_error")
        if e:
            lines.append(f"- whole-network {what} predicted from the block table (sum + fixed "
                         f"part) vs compiled: mean error {e['mean']:.1%}, max {e['max']:.1%}")
    lines += ["", f"Search over the tables: {found['combinations']} combinations, "
                  f"{found['seconds']:.2f} s.", "", "## Models (finetuned, integer semantics)", "",
              "| model | mIoU | cycles | energy (uJ) | size (KiB) | runs | blocks |",
              "|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        lines.append(f"| {n} | {r['miou']:.4f} | {r['cycles']} | {r['energy_j'] * 1e6:.2f} | "
                     f"{r['size_bits'] / 8 / 1024:.1f} | {r['runs']} | "
                     f"{', '.join(r['blocks'])} |")
    rtl = summary.get("rtl", {})
    if rtl:
        lines += ["", "## On the RTL (sampled images)", ""]
        for n, r in rtl.items():
            lines.append(f"- {n}: {r['images']} images, bit-exact {r['bit_exact']}, "
                         f"{r['cycles']} cycles")
        lines += ["", "| layer | " + " | ".join(rtl) + " |", "|---" * (len(rtl) + 1) + "|"]
        layers = list(next(iter(rtl.values()))["layers"])
        for layer in layers:
            lines.append(f"| {layer} | " + " | ".join(str(r["layers"].get(layer, "-"))
                                                       for r in rtl.values()) + " |")
    times = summary.get("times", {})
    if times:
        lines += ["", "## Time per phase (s)", ""] + [f"- {k}: {v:.1f}" for k, v in times.items()]
    lines += ["", f"Teacher: mIoU {t['miou']:.4f}, {t['cycles']} cycles, "
                  f"{t['size_bits'] / 8 / 1024:.1f} KiB.", ""]
    lines += [f"![{p}]({p})" for p in _plots(run_dir, results, summary)]
    page = write_seg_page(run_dir, results, found, summary)
    lines += ["", f"Interactive: [{page.name}]({page.name})"]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
