"""Ingestion of a mixed folder: PDF, Markdown, text, HTML, JSONL, metadata rules, bad files."""

import json
import shutil
from pathlib import Path

from tasks.data import sec_relevant_ids
from tasks.ingestion import html_text, ingest_folder

SEC = Path(__file__).resolve().parents[2] / "data" / "raw" / "sec10q" / "docs"


def test_mixed_folder(tmp_path):
    shutil.copy(SEC / "2023 Q2 AAPL.pdf", tmp_path / "2023 Q2 AAPL.pdf")
    (tmp_path / "guide.md").write_text("# Travel policy\n\nBook economy class.\n")
    (tmp_path / "notes.txt").write_text("Plain notes.")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Rates</title><script>x()</script></head><body><h2>Table</h2>"
        "<table><tr><th>Year</th><th>Rate</th></tr><tr><td>2023</td><td>5%</td></tr></table>"
        "</body></html>"
    )
    (tmp_path / "extra.jsonl").write_text(
        json.dumps({"id": "j1", "title": "J", "text": "From JSONL", "groups": ["hr"]}) + "\n{bad\n"
    )
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.txt.meta.json").write_text(
        json.dumps({"groups": ["hr"], "title": "HR notes"})
    )
    (tmp_path / "_metadata.yaml").write_text(
        "defaults:\n  groups: [staff]\nrules:\n  - match: '*AAPL*'\n    groups: [finance]\n"
    )

    result = ingest_folder(tmp_path, ["public"])
    docs = {d["id"]: d for d in result.documents}
    assert set(docs) == {"2023-q2-aapl", "guide", "notes", "page", "j1"}
    pdf = docs["2023-q2-aapl"]
    assert pdf["groups"] == ["finance"] and "Total net sales" in pdf["text"]
    assert any(
        line.startswith("Total net sales") and line.count(",") >= 3
        for line in pdf["text"].splitlines()
    )  # a table row stays one readable line
    assert docs["guide"]["title"] == "Travel policy" and docs["guide"]["groups"] == ["staff"]
    assert docs["notes"]["title"] == "HR notes" and docs["notes"]["groups"] == ["hr"]
    assert "2023 | 5%" in docs["page"]["text"] and "x()" not in docs["page"]["text"]
    assert docs["j1"]["groups"] == ["hr"]
    assert {p.rule for p in result.problems} == {"parseable"}
    assert {Path(p.file.split(":")[0]).name for p in result.problems} == {
        "broken.pdf",
        "extra.jsonl",
    }
    assert [Path(s).name for s in result.skipped] == ["image.png"]


def test_html_headings_become_markdown():
    text, title = html_text("<title>T</title><h1>Top</h1><p>Body</p>")
    assert title == "T" and "# Top" in text


def test_sec_globs_match_documents():
    names = {"a": "2022 Q3 AAPL.pdf", "b": "2023 Q1 AAPL.pdf", "c": "2023 Q1 NVDA.pdf"}
    assert sec_relevant_ids("*AAPL*", names) == ["a", "b"]
    assert sec_relevant_ids("*2023 Q1 NVDA*", names) == ["c"]
