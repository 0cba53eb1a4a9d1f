"""Interactive results as self-contained HTML pages (plotly embedded: they work offline).

`search_page`: a Pareto scatter per objective pair (hover a point: its candidate; click it: its
per-layer bits, cycles and energy), the hypervolume curve and the run's config.
`evaluation_page`: one network's per-layer cycles and energy breakdown.

Every text that comes from a run (candidate descriptions, layer names, the config) is escaped
before it reaches the page.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path

import optuna
import plotly.graph_objects as go

from codesign.objectives import OBJECTIVES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; }
.figs > div { flex: 0 0 auto; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
#details { border: 1px solid #ddd; padding: 0.8em; min-height: 3em; background: #fafafa; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; }
"""


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _figure(fig: go.Figure, div_id: str, first: bool, post_script: str | None = None) -> str:
    """A figure as a div; the first carries plotly.js itself (inline, no CDN)."""
    return fig.to_html(full_html=False, include_plotlyjs=first, div_id=div_id,
                       post_script=post_script, config={"displaylogo": False})


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no closing tag can appear)."""
    return json.dumps(value).replace("</", "<\\/")


def _table(head: list[str], rows: list[list]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _trial_details(t: optuna.trial.FrozenTrial, test: dict | None) -> str:
    """The HTML shown when a trial's point is clicked."""
    m = t.user_attrs.get("metrics") or {}
    facts = [f"<h2>Trial {t.number}</h2>",
             f"<p class=\"candidate\">{html.escape(t.user_attrs.get('description', ''))}</p>",
             "<p>" + "; ".join(
                 f"{html.escape(o.label)}: {o.show(m.get(o.field))}" for o in OBJECTIVES.values()
                 if m.get(o.field) is not None)
             + f"; accelerator {html.escape(str(t.user_attrs.get('accelerator', '')))}"
             + f"; figures from: {html.escape(str(m.get('fidelity', '')))}"
             + (f"; test accuracy {test['accuracy']:.4f} ({test['images']} images)"
                if test else "") + "</p>"]
    layers = m.get("layers") or []
    if layers:
        facts.append(_table(["layer", "kind", "bits (w/a->out)", "cycles", "energy (nJ)"],
                            [[la["name"], la.get("kind", ""), la.get("bits", ""), la["cycles"],
                              f"{la['energy_j'] * 1e9:.3f}"] for la in layers]))
    return "".join(facts)


def search_page(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], pareto: set[int],
                objectives: tuple[str, ...], hypervolume: list[float], config_text: str,
                path: Path, summary: str = "") -> Path:
    """report.html of a search run."""
    from codesign.front import held_out_score

    details = {t.number: _trial_details(t, held_out_score(study, t)) for t in trials}
    body = [f"<h1>Search {html.escape(study.study_name)}</h1>",
            f"<p>{html.escape(summary)}</p>",
            "<p>Hover a point to see its candidate; click it for its layers.</p>",
            f"<script>const TRIALS = {_script_json(details)};\n"
            "function showTrial(n) {\n"
            "  const d = document.getElementById('details');\n"
            "  d.innerHTML = TRIALS[n] || ('trial ' + n + ': no details');\n"
            "  d.dataset.trial = n;\n}\n</script>",
            "<div class=\"figs\">"]
    first = True
    for i, j in itertools.combinations(range(len(objectives)), 2):
        ox, oy = OBJECTIVES[objectives[i]], OBJECTIVES[objectives[j]]
        fig = go.Figure()
        for name, color, group in (
                ("trials", "#999", [t for t in trials if t.number not in pareto]),
                ("Pareto front", "#d62728", [t for t in trials if t.number in pareto])):
            fig.add_trace(go.Scatter(
                x=[t.values[i] * ox.scale for t in group],
                y=[t.values[j] * oy.scale for t in group], mode="markers", name=name,
                marker={"color": color, "size": 10}, customdata=[t.number for t in group],
                text=[f"trial {t.number}<br>{html.escape(t.user_attrs.get('description', ''))}"
                      for t in group],
                hovertemplate="%{text}<br>" + f"{ox.label}: %{{x:{ox.fmt}}}<br>"
                              + f"{oy.label}: %{{y:{oy.fmt}}}"
                              + "<extra></extra>"))
        fig.update_layout(width=560, height=440, xaxis_title=ox.label, yaxis_title=oy.label,
                          margin={"l": 60, "r": 20, "t": 30, "b": 50}, hovermode="closest")
        click = ("document.getElementById('{plot_id}').on('plotly_click', "
                 "function (e) { showTrial(e.points[0].customdata); });")
        body.append(_figure(fig, f"pareto-{ox.name}-{oy.name}", first, click))
        first = False
    body.append("</div>")
    body += ["<div id=\"details\">Click a point for its per-layer bits, cycles and energy.</div>"]
    if hypervolume:
        fig = go.Figure(go.Scatter(x=list(range(1, len(hypervolume) + 1)), y=hypervolume,
                                   mode="lines+markers", name="hypervolume"))
        fig.update_layout(width=560, height=340, xaxis_title="completed trials",
                          yaxis_title="hypervolume (normalized)",
                          margin={"l": 60, "r": 20, "t": 30, "b": 50})
        body += ["<h2>Hypervolume</h2>", _figure(fig, "hypervolume", first)]
        first = False
    if first:  # no plot: still a valid page
        body.append("<p>No completed trial to plot yet.</p>")
    body += ["<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>"]
    path.write_text(_page(f"Search {study.study_name}", body))
    return path


def evaluation_page(cost, path: Path) -> Path:
    """One network's per-layer figures (a `codesign.metrics.Metrics`)."""
    names = [layer.name for layer in cost.layers]
    text = [f"{html.escape(la.name)} ({la.kind}, {la.bits})<br>{la.cycles} cycles, "
            f"utilization {100 * la.utilization:.1f}%" for la in cost.layers]
    cycles = go.Figure(go.Bar(x=[la.cycles for la in cost.layers], y=names, orientation="h",
                              text=text, hovertemplate="%{text}<extra></extra>",
                              textposition="none"))
    cycles.update_layout(title="cycles per layer", xaxis_title="cycles", width=620,
                         height=max(300, 26 * len(names) + 120),
                         yaxis={"autorange": "reversed"},
                         margin={"l": 140, "r": 20, "t": 40, "b": 50})
    energy = go.Figure()
    parts = list(cost.layers[0].energy_breakdown_j) if cost.layers else []
    for part in parts:
        energy.add_trace(go.Bar(x=[la.energy_breakdown_j[part] * 1e9 for la in cost.layers],
                                y=names, orientation="h", name=part,
                                hovertemplate="%{y}: %{x:.3f} nJ " + part + "<extra></extra>"))
    energy.update_layout(barmode="stack", title="energy per layer (model)",
                         xaxis_title="energy (nJ)", width=620,
                         height=max(300, 26 * len(names) + 120), yaxis={"autorange": "reversed"},
                         margin={"l": 140, "r": 20, "t": 40, "b": 50})
    host = (f"host ops: {', '.join(cost.host_ops)}" if cost.host_ops
            else "every op on the accelerator")
    body = [f"<h1>Evaluation on accelerator '{html.escape(cost.accelerator)}'</h1>",
            f"<p>{cost.cycles} cycles = {cost.latency_s * 1e6:.2f} us, "
            f"{cost.energy_j * 1e9:.2f} nJ (energy model), {cost.size_bits} bits of weights; "
            f"figures from: {html.escape(cost.fidelity)}; {html.escape(host)}</p>",
            "<div class=\"figs\">", _figure(cycles, "cycles", True),
            _figure(energy, "energy", False), "</div>",
            _table(["layer", "kind", "bits (w/a->out)", "cycles", "energy (nJ)", "utilization",
                    "read (kB)", "written (kB)"],
                   [[la.name, la.kind, la.bits, la.cycles, f"{la.energy_j * 1e9:.3f}",
                     f"{100 * la.utilization:.1f}%", f"{la.dmem_read_bits / 8e3:.1f}",
                     f"{la.dmem_write_bits / 8e3:.1f}"] for la in cost.layers])]
    path.write_text(_page(f"Evaluation on {cost.accelerator}", body))
    return path
