"""Turn a folder of user documents (PDF, Markdown, text, HTML, JSONL) into corpus records.

Per-document metadata comes from, in order: the record itself (JSONL), a sidecar
`<file>.meta.json`, the folder's `_metadata.yaml` (defaults plus glob rules), then the file
(name as title, modification time as updated_at). A file that cannot be parsed is reported,
never silently dropped; so is a symbolic link out of the folder (never followed), a malformed
`_metadata.yaml` (every file of its folder is held back rather than given guessed groups) or
sidecar, `groups` that are not a non-empty list of group names, and a non-UTF-8 JSONL line.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tasks.progress import progress

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


class MetadataError(ValueError):
    """Metadata that cannot be trusted (a broken `_metadata.yaml` or sidecar, bad groups)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _check_groups(value: Any, where: str) -> list[str]:
    """Document groups follow the callers' rules: a non-empty list of group names."""
    from dualengine.resolve import AccessGroupsError, validate_groups

    try:
        return validate_groups(value, f"{where}: groups")
    except AccessGroupsError as exc:
        raise MetadataError("groups", str(exc)) from exc


def load_folder_rules(folder: Path) -> dict[str, Any]:
    """The `_metadata.yaml` of a folder: `defaults` and glob `rules` ({match, ...fields});
    raises MetadataError naming the file and the rule it breaks."""
    path = folder / METADATA_FILE
    if not path.exists():
        return {}
    try:
        rules = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise MetadataError("metadata-file", f"{path}: not UTF-8 ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MetadataError("metadata-file", f"{path}: not valid YAML{where}") from exc
    if not isinstance(rules, dict):
        raise MetadataError("metadata-file", f"{path}: a mapping (defaults, rules) is expected")
    defaults = rules.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise MetadataError("metadata-file", f"{path}: 'defaults' must be a mapping")
    if "groups" in defaults:
        _check_groups(defaults["groups"], f"{path} defaults")
    entries = rules.get("rules") or []
    if not isinstance(entries, list):
        raise MetadataError("metadata-file", f"{path}: 'rules' must be a list")
    for number, rule in enumerate(entries, start=1):
        if not isinstance(rule, dict) or not isinstance(rule.get("match"), str):
            raise MetadataError(
                "metadata-file", f"{path}: rule {number} needs a string 'match' glob"
            )
        if "groups" in rule:
            _check_groups(rule["groups"], f"{path} rule {number}")
    return {"defaults": defaults, "rules": entries}


def _sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_name(path.name + ".meta.json")
    if not sidecar.exists():
        return {}
    try:
        meta = json.loads(sidecar.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataError("sidecar", f"{sidecar}: not UTF-8 JSON ({exc})"[:300]) from exc
    if not isinstance(meta, dict):
        raise MetadataError("sidecar", f"{sidecar}: a JSON object is expected")
    if "groups" in meta:
        _check_groups(meta["groups"], str(sidecar))
    return meta


def metadata_for(path: Path, root: Path, rules: dict[str, Any]) -> dict[str, Any]:
    """Merged metadata for one file: defaults < matching glob rules < sidecar."""
    meta: dict[str, Any] = dict(rules.get("defaults") or {})
    relative = path.relative_to(root).as_posix()
    for rule in rules.get("rules") or []:
        pattern = rule.get("match", "")
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.name, pattern):
            meta.update({k: v for k, v in rule.items() if k != "match"})
    meta.update(_sidecar(path))
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
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append(IngestionProblem(where, "utf-8", f"not UTF-8: {exc.reason}"))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            result.problems.append(IngestionProblem(where, "parseable", str(exc)))
            continue
        doc = {**meta, **record}
        try:
            doc["groups"] = _check_groups(doc.get("groups"), where)
        except MetadataError as exc:
            result.problems.append(IngestionProblem(where, exc.rule, str(exc)))
            continue
        doc.setdefault("source", f"{path.name}:{number}")
        doc["_file"] = where
        result.documents.append(doc)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _walk(root: Path, result: IngestionResult) -> list[Path]:
    """Files under root without following symbolic links out of it: a link whose target lies
    outside is a problem, a linked folder is never entered (its files are reached directly
    when they are inside)."""
    files = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                target = (here / name).resolve()
                if not _inside(target, root):
                    result.problems.append(
                        IngestionProblem(
                            str(here / name), "inside-folder", f"links to {target}, outside {root}"
                        )
                    )
                else:
                    result.skipped.append(str(here / name))
        dirs.sort()
        for name in sorted(names):
            path = here / name
            if path.is_symlink():
                target = path.resolve()
                if not _inside(target, root):
                    result.problems.append(
                        IngestionProblem(
                            str(path), "inside-folder", f"links to {target}, outside {root}"
                        )
                    )
                    continue
                if not target.is_file():
                    result.skipped.append(str(path))
                    continue
            files.append(path)
    return files


def ingest_folder(root: Path, default_groups: list[str]) -> IngestionResult:
    """Every supported file under root (or root itself if it is a file) as corpus records."""
    root = root.resolve()
    result = IngestionResult()
    files = [root] if root.is_file() else _walk(root, result)
    base = root.parent if root.is_file() else root
    rules_cache: dict[Path, dict[str, Any] | MetadataError] = {}
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
            try:
                if path.parent not in rules_cache:
                    try:
                        rules_cache[path.parent] = load_folder_rules(path.parent)
                    except MetadataError as exc:
                        rules_cache[path.parent] = exc
                        result.problems.append(
                            IngestionProblem(str(path.parent / METADATA_FILE), exc.rule, str(exc))
                        )
                folder_rules = rules_cache[path.parent]
                if isinstance(folder_rules, MetadataError):  # never guess a document's groups
                    raise MetadataError(
                        folder_rules.rule, f"skipped: {path.parent / METADATA_FILE} is malformed"
                    )
                meta = metadata_for(path, base, folder_rules)
                meta.setdefault("groups", list(default_groups))
            except MetadataError as exc:
                result.problems.append(IngestionProblem(str(path), exc.rule, str(exc)))
                bar.advance()
                continue
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
            try:
                groups = _check_groups(meta["groups"], str(path))
            except MetadataError as exc:
                result.problems.append(IngestionProblem(str(path), exc.rule, str(exc)))
                bar.advance()
                continue
            result.documents.append(
                {
                    "id": meta.get("id") or document_id(path, base),
                    "title": meta.get("title") or title or path.stem,
                    "text": text,
                    "source": meta.get("source") or path.relative_to(base).as_posix(),
                    "updated_at": meta.get("updated_at") or _modified(path),
                    "groups": groups,
                    "_file": str(path),
                }
            )
            bar.advance()
    return result
