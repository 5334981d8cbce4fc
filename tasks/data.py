"""Datasets: the XQuAD sample turned into the three input formats, readers, and data versions.

Formats (see data/README.md):
- corpus JSONL: id, title, text, source, updated_at (ISO 8601), groups (list of access groups)
- QA JSONL: id, question, answer, passage_id, article
- evaluation JSONL: id, question, answer, relevant_ids (list of passage ids), article
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

XQUAD_UPDATED_AT = "2019-11-21T00:00:00Z"  # the date the upstream file last changed


class DataFormatError(ValueError):
    """A record that cannot be read; the message names the file, the line and the rule."""


@dataclass(frozen=True)
class DatasetPaths:
    """Where the three datasets of one run live."""

    corpus: Path
    train: Path
    eval: Path

    def as_dict(self) -> dict[str, str]:
        return {"corpus": str(self.corpus), "train": str(self.train), "eval": str(self.eval)}


def read_jsonl(path: Path, annotate: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file; a bad line raises DataFormatError naming file and line.

    With annotate=True each record gets `_file` = "path:line" for later reports."""
    if not path.exists():
        raise DataFormatError(f"{path}: file not found")
    records: list[dict[str, Any]] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"{path}, line {number}: rule 'UTF-8' failed ({exc.reason} at byte {exc.start})"
                ) from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}, line {number}: rule 'valid JSON' failed ({exc.msg})"
                ) from exc
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}, line {number}: rule 'JSON object' failed")
            if annotate:
                record.setdefault("_file", f"{path}:{number}")
            records.append(record)
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as JSONL (sorted keys, UTF-8) so identical data gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def file_digest(path: Path) -> str:
    """md5 of a file's bytes (the digest DVC records in dvc.lock)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_version(paths: dict[str, Path]) -> str:
    """One short id for the content of several named files."""
    combined = hashlib.sha256()
    for name, path in sorted(paths.items()):
        combined.update(f"{name}:{file_digest(Path(path))}\n".encode())
    return combined.hexdigest()[:12]


def data_version(paths: DatasetPaths) -> str:
    """One short id for the content of all three datasets."""
    return files_version({k: Path(v) for k, v in paths.as_dict().items()})


def split_articles(titles: list[str], eval_fraction: float, seed: int) -> set[str]:
    """Choose the held-out articles; questions of one article never straddle the split."""
    unique = sorted(set(titles))
    if len(unique) < 2:
        raise ValueError("need at least two articles to split by article")
    rng = random.Random(seed)
    shuffled = unique[:]
    rng.shuffle(shuffled)
    n_eval = min(len(unique) - 1, max(1, round(len(unique) * eval_fraction)))
    return set(shuffled[:n_eval])


def xquad_records(
    squad: dict[str, Any], groups: list[str], source_name: str = "xquad.en.json"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flatten SQuAD-format JSON into corpus records and QA records (one per question)."""
    corpus: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    for a_index, article in enumerate(squad["data"]):
        title = article["title"]
        for p_index, paragraph in enumerate(article["paragraphs"]):
            passage_id = f"xquad-{a_index:02d}-{p_index:02d}"
            corpus.append(
                {
                    "id": passage_id,
                    "title": title.replace("_", " "),
                    "text": paragraph["context"],
                    "source": f"{source_name}#data[{a_index}].paragraphs[{p_index}]",
                    "updated_at": XQUAD_UPDATED_AT,
                    "groups": list(groups),
                }
            )
            for qa in paragraph["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "answer": qa["answers"][0]["text"],
                        "passage_id": passage_id,
                        "article": title,
                    }
                )
    return corpus, questions


def prepare_xquad(
    raw_path: Path, out_dir: Path, eval_fraction: float, seed: int, groups: list[str]
) -> DatasetPaths:
    """Turn the raw XQuAD file into corpus / train / eval JSONL, split by article."""
    with open(raw_path, encoding="utf-8") as handle:
        squad = json.load(handle)
    corpus, questions = xquad_records(squad, groups)
    eval_articles = split_articles([q["article"] for q in questions], eval_fraction, seed)
    train = [q for q in questions if q["article"] not in eval_articles]
    evaluation = [
        {
            "id": q["id"],
            "question": q["question"],
            "answer": q["answer"],
            "relevant_ids": [q["passage_id"]],
            "article": q["article"],
        }
        for q in questions
        if q["article"] in eval_articles
    ]
    paths = DatasetPaths(out_dir / "corpus.jsonl", out_dir / "train.jsonl", out_dir / "eval.jsonl")
    write_jsonl(paths.corpus, corpus)
    write_jsonl(paths.train, train)
    write_jsonl(paths.eval, evaluation)
    return paths


def _fresh(stamp: Path, outputs: list[Path], expected: str) -> bool:
    return all(p.exists() for p in outputs) and stamp.exists() and stamp.read_text() == expected


def sample_dataset_paths(data_dir: Path, params: dict[str, Any]) -> DatasetPaths:
    """Prepare the bundled XQuAD sample unless its outputs are already up to date."""
    raw = data_dir / "raw" / "xquad" / "xquad.en.json"
    out = data_dir / "prepared" / "xquad"
    paths = DatasetPaths(out / "corpus.jsonl", out / "train.jsonl", out / "eval.jsonl")
    stamp = out / ".inputs"
    data_params = params["data"]
    expected = json.dumps(
        {"raw": file_digest(raw), "params": data_params, "format": 1}, sort_keys=True
    )
    if not _fresh(stamp, [paths.corpus, paths.train, paths.eval], expected):
        paths = prepare_xquad(
            raw,
            out,
            data_params["eval_fraction"],
            data_params["split_seed"],
            data_params["access_groups"],
        )
        stamp.write_text(expected)
    return paths


def sec_relevant_ids(pattern: str, filenames: dict[str, str]) -> list[str]:
    """Document ids whose PDF name matches a `Source Docs` glob such as `*2023 Q3 NVDA*`."""
    import fnmatch

    return sorted(doc_id for doc_id, name in filenames.items() if fnmatch.fnmatch(name, pattern))


def prepare_sec10q(raw_dir: Path, out_dir: Path, default_groups: list[str]) -> tuple[Path, Path]:
    """Extract the 20 SEC 10-Q PDFs into a corpus and the 195 questions into an eval set."""
    import csv

    from tasks.ingestion import ingest_folder

    result = ingest_folder(raw_dir / "docs", default_groups)
    if result.problems:
        raise DataFormatError(f"{raw_dir}: unreadable sample documents: {result.problems}")
    corpus, filenames = [], {}
    for doc in result.documents:
        doc_id = f"sec10q-{doc['id']}"
        filenames[doc_id] = Path(doc.pop("_file")).name
        corpus.append(doc | {"id": doc_id, "source": f"sec10q/{doc['source']}"})
    evaluation = []
    with open(raw_dir / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=1):
            relevant = sec_relevant_ids(row["Source Docs"], filenames)
            if not relevant:
                raise DataFormatError(
                    f"{raw_dir / 'qna_data.csv'}, row {number}: rule 'Source Docs matches a "
                    f"document' failed for {row['Source Docs']!r}"
                )
            evaluation.append(
                {
                    "id": f"sec10q-q{number:03d}",
                    "question": row["Question"].strip(),
                    "answer": row["Answer"].strip(),
                    "relevant_ids": relevant,
                    "article": row["Source Docs"],
                    "question_type": row["Question Type"],
                }
            )
    corpus_path, eval_path = out_dir / "corpus.jsonl", out_dir / "eval.jsonl"
    write_jsonl(corpus_path, corpus)
    write_jsonl(eval_path, evaluation)
    return corpus_path, eval_path


def sec10q_paths(data_dir: Path) -> tuple[Path, Path]:
    """The SEC sample's corpus and eval set, extracted again only when a source file changed."""
    raw = data_dir / "raw" / "sec10q"
    out = data_dir / "prepared" / "sec10q"
    sources = sorted(p for p in raw.rglob("*") if p.is_file())
    expected = json.dumps(
        {p.relative_to(raw).as_posix(): file_digest(p) for p in sources} | {"format": 1},
        sort_keys=True,
    )
    corpus, evaluation = out / "corpus.jsonl", out / "eval.jsonl"
    if not _fresh(out / ".inputs", [corpus, evaluation], expected):
        prepare_sec10q(raw, out, ["finance"])
        (out / ".inputs").write_text(expected)
    return corpus, evaluation


SAMPLE_NAMES = ("xquad", "sec10q")


def sample_set(data_dir: Path, params: dict[str, Any], name: str) -> tuple[Path, Path]:
    """Corpus and held-out questions of a bundled sample, prepared if needed."""
    if name == "xquad":
        paths = sample_dataset_paths(data_dir, params)
        return paths.corpus, paths.eval
    if name == "sec10q":
        return sec10q_paths(data_dir)
    raise ValueError(f"unknown sample {name!r} (known: {', '.join(SAMPLE_NAMES)})")


def _sample_files(data_dir: Path, params: dict[str, Any], key: str, part: str) -> dict[str, Path]:
    """The bundled samples named in params['knowledge'][key], each's `part` (corpus or eval)."""
    found: dict[str, Path] = {}
    for name in params["knowledge"][key]:
        try:
            corpus, evaluation = sample_set(data_dir, params, name)
        except ValueError as exc:
            raise ValueError(f"params.yaml knowledge.{key}: {exc}") from exc
        found[name] = corpus if part == "corpus" else evaluation
    return found


def sample_corpora(data_dir: Path, params: dict[str, Any]) -> dict[str, Path]:
    """The bundled corpora named in params (knowledge.corpora), prepared if needed."""
    return _sample_files(data_dir, params, "corpora", "corpus")


def sample_eval_sets(data_dir: Path, params: dict[str, Any]) -> dict[str, Path]:
    """The bundled evaluation sets named in params (knowledge.eval_sets)."""
    return _sample_files(data_dir, params, "eval_sets", "eval")


def filing_company(doc_id: str) -> str:
    """The company of an SEC sample filing id (`sec10q-2023-q3-aapl` → `aapl`)."""
    return str(doc_id).rsplit("-", 1)[-1].lower()


def split_by_company(
    rows: list[dict[str, Any]], train_companies: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """SEC questions split so that no evaluated filing is ever trained on: every filing of a
    company goes to one side. `train_companies` companies (seeded choice) train; the rest are
    evaluated. A question whose filings span companies stays on the evaluation side."""
    companies = sorted({filing_company(i) for r in rows for i in r["relevant_ids"]})
    if train_companies >= len(companies):
        raise ValueError(
            f"split_by_company: {train_companies} training companies leave none of "
            f"{len(companies)} to evaluate"
        )
    chosen = set(random.Random(seed).sample(companies, max(0, train_companies)))
    train, evaluation = [], []
    for row in rows:
        owners = {filing_company(i) for i in row["relevant_ids"]}
        (train if owners <= chosen else evaluation).append(row)
    return train, evaluation
