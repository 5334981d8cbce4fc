"""Server-rendered pages of `dualengine ui` (Jinja2, autoescaped) and their small helpers:
quotes highlighted in passage text and inline SVG sparklines of monitor signals."""

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup, escape

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}dualengine{% endblock %}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}
nav a{margin-right:1rem} mark{background:#ffe066;padding:0 .1em}
.answer{font-size:1.3rem;border-left:4px solid #2b8a3e;padding:.4rem .8rem;background:#f4fbf5}
.none{border-color:#999;background:#f6f6f6} .citation{margin:.6rem 0;padding:.4rem .6rem;
border:1px solid #ddd;border-radius:4px} .meta{color:#666;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.9rem} td,th{border-bottom:1px solid #ddd;
padding:.3rem;text-align:left;vertical-align:top} .bad{color:#c92a2a} .good{color:#2b8a3e}
.degraded{color:#c92a2a;font-weight:bold} .warn{color:#e67700} .ok{color:#2b8a3e}
.error{color:#c92a2a;font-weight:bold} textarea,input[type=text]{width:100%}
</style></head><body>
<nav><a href="/">Ask</a><a href="/operator">Operator view</a></nav>
{% block body %}{% endblock %}
</body></html>"""

ASK = """{% extends "base" %}{% block body %}
<h1>Ask the documents</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/ask" id="ask-form">
<fieldset><legend>Your groups (answers use only documents these groups may read)</legend>
{% for g in allowed %}<label><input type="checkbox" name="groups" value="{{ g }}"
 id="group-{{ g }}" {% if g in picked %}checked{% endif %}> {{ g }}</label> {% endfor %}
</fieldset>
<p><input type="text" name="question" id="question" value="{{ question }}"
 placeholder="Your question" required maxlength="1000"></p>
<p><button type="submit" id="ask">Ask</button></p></form>
{% endblock %}"""

ANSWER = """{% extends "base" %}{% block body %}
<h1>{{ a.question }}</h1>
<p class="meta">groups: {{ a.groups|join(", ") }} · model {{ a.model_version }} ·
index {{ a.index_collection }} · {{ a.timings_ms.total }} ms
{% if a.trace_id %}· trace <code id="trace-id">{{ a.trace_id }}</code>{% endif %}</p>
<p class="answer{% if not a.answered %} none{% endif %}" id="answer">{{ a.answer }}</p>
{% if a.citations %}<h2>Sources</h2>{% endif %}
{% for c in a.citations %}<div class="citation">
<a class="source-link"
 href="/passages/{{ c.passage_id|urlencode }}?{{ group_query }}&quote={{ c.quote|urlencode }}"
>{{ c.title or c.passage_id }}</a>
<span class="meta">{{ c.passage_id }} · score {{ c.score }}
{% if c.cited_by_model %}· cited by the model{% endif %}</span>
<blockquote class="quote">{{ c.quote|highlight(a.answer) }}</blockquote></div>{% endfor %}
{% if a.trace_id %}
<h2>Was this right?</h2>
<form method="post" action="/feedback" id="rate-form">
<input type="hidden" name="trace_id" value="{{ a.trace_id }}">
<label><input type="radio" name="rating" value="good" id="rate-good"> right</label>
<label><input type="radio" name="rating" value="bad" id="rate-bad"> wrong</label>
<p><input type="text" name="correction" id="correction" maxlength="500"
 placeholder="If wrong: the right answer (optional)"></p>
<p><input type="text" name="user" id="user" maxlength="64" placeholder="Your name (optional)"></p>
<button type="submit" id="rate">Send rating</button></form>
{% else %}<p class="meta">Not traced (MLflow unreachable): this answer cannot be rated.</p>
{% endif %}
<p><a href="/?{{ group_query }}">Ask another question</a></p>
{% endblock %}"""

RATED = """{% extends "base" %}{% block body %}
<h1>Thank you</h1>
<p id="rated">Rated <b class="{{ r.rating }}">{{ r.rating }}</b> on trace
<code>{{ r.trace_id }}</code> by {{ r.user }}.</p>
{% if r.golden %}<p id="golden">The correction {{ r.golden.status }} as golden question
{{ r.golden.id }} (golden set size {{ r.golden.size }}){% if r.golden.reason %}:
{{ r.golden.reason }}{% endif %}.</p>{% endif %}
<p><a href="/">Ask another question</a> · <a href="/operator">Operator view</a></p>
{% endblock %}"""

PASSAGE = """{% extends "base" %}{% block body %}
<h1>{{ p.title }}</h1><p class="meta">{{ p.passage_id }} · {{ p.source }}</p>
<p id="passage">{{ p.text|highlight(quote) }}</p>
{% endblock %}"""

OPERATOR = """{% extends "base" %}{% block title %}dualengine operator{% endblock %}
{% block body %}<h1>Operator view</h1>
<h2>Monitor</h2>
{% if monitor.runs %}<p>Latest run {{ monitor.latest_time }}:
{% for engine, status in monitor.status.items() %}{{ engine }}
<span class="{{ status }}" id="status-{{ engine }}">{{ status }}</span>{% if not loop.last %},
{% endif %}{% endfor %} ({{ monitor.runs }} runs shown)</p>
<table><tr><th>engine</th><th>signal</th><th>latest</th><th>recent runs</th></tr>
{% for s in monitor.signals %}<tr><td>{{ s.engine }}</td><td>{{ s.name }}</td>
<td>{{ "%.4g"|format(s.latest) }}</td><td>{{ s["values"]|sparkline }}</td></tr>{% endfor %}
</table>{% else %}<p>No monitor runs yet (<code>dualengine monitor</code>).</p>{% endif %}
<h2>Recent answers</h2>
<table id="recent"><tr><th>time</th><th>question</th><th>answer</th><th>groups</th>
<th>trace</th><th>rating</th></tr>
{% for r in rows %}<tr><td>{{ r.ts.strftime("%Y-%m-%d %H:%M:%S") }}</td><td>{{ r.question }}</td>
<td>{{ r.answer }}</td><td>{{ r.groups|join(", ") }}</td>
<td>{% if r.trace_id %}<a href="{{ trace_url(r.trace_id) }}"><code>{{ r.trace_id }}</code></a>
{% endif %}</td><td class="{{ r.feedback or '' }}">{{ r.feedback or "" }}
{% if r.correction %}→ {{ r.correction }}{% endif %}</td></tr>{% endfor %}
</table>{% endblock %}"""


def highlight(text: str, quote: str) -> Markup:
    """Escaped text with every occurrence of quote (case-insensitive) wrapped in <mark>."""
    text, quote = text or "", (quote or "").strip()
    if not quote:
        return escape(text)
    lower, needle = text.lower(), quote.lower()
    out, start = [], 0
    while (found := lower.find(needle, start)) >= 0:
        out += [
            escape(text[start:found]),
            Markup("<mark>"),
            escape(text[found : found + len(quote)]),
        ]
        out.append(Markup("</mark>"))
        start = found + len(quote)
    out.append(escape(text[start:]))
    return Markup("").join(out)


def sparkline(values: list[float | None], width: int = 120, height: int = 24) -> Markup:
    """An inline SVG polyline of the values (oldest left); gaps are skipped."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return Markup('<svg class="sparkline" width="%d" height="%d"></svg>') % (width, height)
    low, high = min(v for _, v in points), max(v for _, v in points)
    span, step = (high - low) or 1.0, width / max(len(values) - 1, 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in points
    )
    return Markup(
        '<svg class="sparkline" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        '<polyline fill="none" stroke="#1c7ed6" stroke-width="1.5" points="{p}"/></svg>'
    ).format(w=width, h=height, p=coords)


def environment() -> Environment:
    env = Environment(
        loader=DictLoader(
            {
                "base": BASE,
                "ask": ASK,
                "answer": ANSWER,
                "rated": RATED,
                "passage": PASSAGE,
                "operator": OPERATOR,
            }
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["highlight"] = highlight
    env.filters["sparkline"] = sparkline
    return env


def render(env: Environment, name: str, **values: Any) -> str:
    return env.get_template(name).render(**values)
