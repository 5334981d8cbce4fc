"""Turn a folder of user documents (PDF, Markdown, text, HTML, JSONL) into corpus records.

Per-document metadata comes from, in order: the record itself (JSONL), a sidecar
`<file>.meta.json`, the folder's `_metadata.yaml` (defaults plus glob rules), then the file
(name as title, modification time as updated_at). A file that cannot be parsed is reported,
never silently dropped.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dualengine.progress import progress

SUPPORTED = {".pdf", ".md", ".markdown", ".txt", ".html", ".htm", ".jsonl"}
METADATA_FILE = "_metadata.yaml"


@dataclass
class IngestionProblem:
    """A file (or JSONL line) that produced no document, with the rule it broke."""

    file: str
    rule: str
    excerpt: str


@dataclass
class IngestionResult:
    documents: list[dict[str, Any]] = field(default_factory=list)
    problems: list[IngestionProblem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def pdf_text(path: Path) -> str:
    """Text of every page with pdfium; table rows come out as one line each."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
            textpage.close()
            page.close()
    finally:
        document.close()
    return "\n\n".join(p.strip() for p in pages if p.strip())


def html_text(raw: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (headings and table rows on their own lines) and its title."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    for row in soup.find_all("tr"):
        cells = [c.get_text(" ", strip=True) for c in row.find_all(["td", "th"])]
        row.replace_with(soup.new_string(" | ".join(cells) + "\n"))
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        level = int(heading.name[1])
        heading.replace_with(
            soup.new_string(f"\n{'#' * level} {heading.get_text(' ', strip=True)}\n")
        )
    text = soup.get_text("\n")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip(), title


def markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def load_folder_rules(folder: Path) -> dict[str, Any]:
    """The `_metadata.yaml` of a folder: `defaults` and glob `rules` ({match, ...fields})."""
    path = folder / METADATA_FILE
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def metadata_for(path: Path, root: Path, rules: dict[str, Any]) -> dict[str, Any]:
    """Merged metadata for one file: defaults < matching glob rules < sidecar."""
    meta: dict[str, Any] = dict(rules.get("defaults") or {})
    relative = path.relative_to(root).as_posix()
    for rule in rules.get("rules") or []:
        pattern = rule.get("match", "")
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.name, pattern):
            meta.update({k: v for k, v in rule.items() if k != "match"})
    sidecar = path.with_name(path.name + ".meta.json")
    if sidecar.exists():
        meta.update(json.loads(sidecar.read_text(encoding="utf-8")))
    return meta


def document_id(path: Path, root: Path) -> str:
    """A stable id from the relative path: lower-case, path separators and spaces as dashes."""
    relative = path.relative_to(root).with_suffix("").as_posix()
    return re.sub(r"[^a-z0-9]+", "-", relative.lower()).strip("-")


def _modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def extract_file(path: Path) -> tuple[str, str | None]:
    """Text and (if the format has one) title of a single non-JSONL file."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return pdf_text(path), None
    raw = path.read_text(encoding="utf-8")
    if suffix in {".html", ".htm"}:
        return html_text(raw)
    if suffix in {".md", ".markdown"}:
        return raw.strip(), markdown_title(raw)
    return raw.strip(), None


def _jsonl_documents(path: Path, meta: dict[str, Any], result: IngestionResult) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            result.problems.append(IngestionProblem(f"{path}:{number}", "parseable", str(exc)))
            continue
        doc = {**meta, **record}
        doc.setdefault("source", f"{path.name}:{number}")
        doc["_file"] = f"{path}:{number}"
        result.documents.append(doc)


def ingest_folder(root: Path, default_groups: list[str]) -> IngestionResult:
    """Every supported file under root (or root itself if it is a file) as corpus records."""
    root = root.resolve()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root
    result = IngestionResult()
    rules_cache: dict[Path, dict[str, Any]] = {}
    candidates = []
    for path in files:
        if path.name == METADATA_FILE or path.name.endswith(".meta.json"):
            continue
        if path.suffix.lower() not in SUPPORTED:
            result.skipped.append(str(path))
            continue
        candidates.append(path)
    with progress("extracting documents", len(candidates), key="ingestion") as bar:
        for path in candidates:
            folder_rules = rules_cache.setdefault(path.parent, load_folder_rules(path.parent))
            meta = metadata_for(path, base, folder_rules)
            meta.setdefault("groups", list(default_groups))
            if path.suffix.lower() == ".jsonl":
                _jsonl_documents(path, meta, result)
                bar.advance()
                continue
            try:
                text, title = extract_file(path)
            except Exception as exc:  # every parser raises its own types
                result.problems.append(
                    IngestionProblem(str(path), "parseable", f"{type(exc).__name__}: {exc}"[:200])
                )
                bar.advance()
                continue
            result.documents.append(
                {
                    "id": meta.get("id") or document_id(path, base),
                    "title": meta.get("title") or title or path.stem,
                    "text": text,
                    "source": meta.get("source") or path.relative_to(base).as_posix(),
                    "updated_at": meta.get("updated_at") or _modified(path),
                    "groups": list(meta["groups"]),
                    "_file": str(path),
                }
            )
            bar.advance()
    return result
