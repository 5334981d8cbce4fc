"""A self-contained HTML report of the attribution evaluation (tables + an embedded plot)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from tasks.attribution import CONTEXTS, GAP_METRICS, METRICS, MODELS
from tasks.gate import interval, row_interval


def f1_plot_png(rows: list[dict[str, Any]], title: str) -> bytes:
    """Grouped bars: F1 per context for base and fine-tuned, with 95 % interval whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    width = 0.38
    for offset, model in zip((-width / 2, width / 2), MODELS, strict=True):
        cells = [
            next(r for r in rows if r["model"] == model and r["context"] == c) for c in CONTEXTS
        ]
        means = [c["f1"] for c in cells]
        errors = [[c["f1"] - c["f1_low"] for c in cells], [c["f1_high"] - c["f1"] for c in cells]]
        xs = [i + offset for i in range(len(CONTEXTS))]
        ax.bar(xs, means, width, yerr=errors, capsize=4, label=model)
    ax.set_xticks(range(len(CONTEXTS)), [c.replace("_", "-") for c in CONTEXTS])
    ax.set_ylabel("token F1 (95% CI)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def html_report(title: str, sections: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """One section per evaluation set: plot, attribution table, gaps, diagnosis."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:4px 8px;text-align:right}th{background:#eee}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _table(["setting", "value"], [[k, str(v)] for k, v in meta.items()]),
    ]
    for section in sections:
        rows = section["rows"]
        png = base64.b64encode(f1_plot_png(rows, section["set"])).decode()
        parts += [
            f"<h2>{html.escape(section['set'])} ({rows[0]['n']} held-out questions)</h2>",
            f"<img alt='F1 by condition' src='data:image/png;base64,{png}'>",
            _table(
                ["model", "context", *METRICS],
                [
                    [
                        r["model"],
                        r["context"],
                        *(row_interval(r, m) for m in METRICS),
                    ]
                    for r in rows
                ],
            ),
            _table(
                ["gap", *GAP_METRICS],
                [
                    [
                        name,
                        *(interval(d[m], signed=True) for m in GAP_METRICS),
                    ]
                    for name, d in section["gaps"].items()
                ],
            ),
            f"<p><b>Diagnosis:</b> {html.escape(section['diagnosis'])}</p>",
            f"<p>Closed-book vs grounded conflict rate (fine-tuned): "
            f"{section['conflict_rate']:.3f}</p>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)
