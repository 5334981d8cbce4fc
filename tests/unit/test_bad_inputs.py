"""Bad input explains itself (file, record, rule) and writes nothing: ingestion of a folder,
the `ingest` command (exit 4), corpus JSONL, and the corpora a re-index is given (exit 3)."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.data import DataFormatError, read_jsonl
from tasks.ingestion import ingest_folder


def good_doc(folder: Path) -> None:
    (folder / "good.txt").write_text("A readable public note.")


def symlink_out_file(folder, outside):
    (outside / "secret.txt").write_text("salaries")
    os.symlink(outside / "secret.txt", folder / "link.txt")


def symlink_out_folder(folder, outside):
    (outside / "hr").mkdir()
    (outside / "hr" / "pay.txt").write_text("salaries")
    os.symlink(outside / "hr", folder / "hr")


def yaml_syntax(folder, outside):
    (folder / "_metadata.yaml").write_text("defaults: [groups: {\n")


def yaml_not_mapping(folder, outside):
    (folder / "_metadata.yaml").write_text("- public\n- finance\n")


def yaml_defaults_list(folder, outside):
    (folder / "_metadata.yaml").write_text("defaults: [public]\n")


def yaml_rules_mapping(folder, outside):
    (folder / "_metadata.yaml").write_text("rules: {match: '*'}\n")


def yaml_rule_without_match(folder, outside):
    (folder / "_metadata.yaml").write_text("rules:\n  - groups: [finance]\n")


def yaml_groups_string(folder, outside):
    (folder / "_metadata.yaml").write_text("defaults:\n  groups: finance\n")


def yaml_groups_null(folder, outside):
    (folder / "_metadata.yaml").write_text("defaults:\n  groups: null\n")


def yaml_groups_wildcard(folder, outside):
    (folder / "_metadata.yaml").write_text("rules:\n  - match: '*'\n    groups: ['*']\n")


def yaml_not_utf8(folder, outside):
    (folder / "_metadata.yaml").write_bytes(b"defaults:\n  title: \xff\xfe\n")


def sidecar_bad_json(folder, outside):
    (folder / "good.txt.meta.json").write_text("{groups: [hr]")


def sidecar_list(folder, outside):
    (folder / "good.txt.meta.json").write_text('["hr"]')


def sidecar_groups_string(folder, outside):
    (folder / "good.txt.meta.json").write_text('{"groups": "hr,finance"}')


def sidecar_groups_empty(folder, outside):
    (folder / "good.txt.meta.json").write_text('{"groups": []}')


def jsonl_not_utf8(folder, outside):
    (folder / "docs.jsonl").write_bytes(b'{"id": "a", "text": "caf\xe9", "groups": ["public"]}\n')


def jsonl_groups_string(folder, outside):
    (folder / "docs.jsonl").write_text(json.dumps({"id": "a", "text": "t", "groups": "hr"}))


def jsonl_groups_null(folder, outside):
    (folder / "docs.jsonl").write_text(json.dumps({"id": "a", "text": "t", "groups": None}))


def jsonl_groups_number_item(folder, outside):
    (folder / "docs.jsonl").write_text(json.dumps({"id": "a", "text": "t", "groups": [7]}))


def jsonl_not_object(folder, outside):
    (folder / "docs.jsonl").write_text("[1, 2]\n")


def text_not_utf8(folder, outside):
    (folder / "latin.txt").write_bytes(b"caf\xe9")


# name: (make the bad input, the file it is reported against, rule, words of the message)
CASES = {
    "symlink to a file outside": (symlink_out_file, "link.txt", "inside-folder", "outside"),
    "symlink to a folder outside": (symlink_out_folder, "hr", "inside-folder", "outside"),
    "_metadata.yaml not YAML": (yaml_syntax, "_metadata.yaml", "metadata-file", "valid YAML"),
    "_metadata.yaml a list": (yaml_not_mapping, "_metadata.yaml", "metadata-file", "mapping"),
    "_metadata.yaml defaults a list": (
        yaml_defaults_list,
        "_metadata.yaml",
        "metadata-file",
        "'defaults' must be a mapping",
    ),
    "_metadata.yaml rules a mapping": (
        yaml_rules_mapping,
        "_metadata.yaml",
        "metadata-file",
        "'rules' must be a list",
    ),
    "_metadata.yaml rule without match": (
        yaml_rule_without_match,
        "_metadata.yaml",
        "metadata-file",
        "rule 1 needs a string 'match'",
    ),
    "_metadata.yaml groups a string": (
        yaml_groups_string,
        "_metadata.yaml",
        "groups",
        "not a string",
    ),
    "_metadata.yaml groups null": (yaml_groups_null, "_metadata.yaml", "groups", "not NoneType"),
    "_metadata.yaml groups wildcard": (
        yaml_groups_wildcard,
        "_metadata.yaml",
        "groups",
        "no wildcards",
    ),
    "_metadata.yaml not UTF-8": (yaml_not_utf8, "_metadata.yaml", "metadata-file", "UTF-8"),
    "sidecar not JSON": (sidecar_bad_json, "good.txt", "sidecar", "good.txt.meta.json"),
    "sidecar a list": (sidecar_list, "good.txt", "sidecar", "JSON object is expected"),
    "sidecar groups a string": (sidecar_groups_string, "good.txt", "groups", "not a string"),
    "sidecar groups empty": (sidecar_groups_empty, "good.txt", "groups", "is empty"),
    "JSONL line not UTF-8": (jsonl_not_utf8, "docs.jsonl:1", "utf-8", "not UTF-8"),
    "JSONL groups a string": (jsonl_groups_string, "docs.jsonl:1", "groups", "not a string"),
    "JSONL groups null": (jsonl_groups_null, "docs.jsonl:1", "groups", "not NoneType"),
    "JSONL groups [7]": (jsonl_groups_number_item, "docs.jsonl:1", "groups", "is a int"),
    "JSONL line not an object": (jsonl_not_object, "docs.jsonl:1", "parseable", "JSON object"),
    "text file not UTF-8": (text_not_utf8, "latin.txt", "parseable", "UnicodeDecodeError"),
}


@pytest.fixture
def folders(tmp_path):
    folder, outside = tmp_path / "docs", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    good_doc(folder)
    return folder, outside


@pytest.mark.parametrize(("make", "file", "rule", "words"), CASES.values(), ids=CASES)
def test_bad_input_is_reported_with_file_record_and_rule(folders, make, file, rule, words):
    folder, outside = folders
    make(folder, outside)
    result = ingest_folder(folder, ["public"])
    found = [p for p in result.problems if p.file.endswith(file)]
    assert found, [(p.file, p.rule, p.excerpt) for p in result.problems]
    assert found[0].rule == rule and words in found[0].excerpt, found[0]
    leaked = [d for d in result.documents if "salaries" in d["text"]]
    assert leaked == []  # nothing from outside the folder
    assert all(d["groups"] and isinstance(d["groups"], list) for d in result.documents)


@pytest.mark.parametrize(
    "make", [yaml_syntax, yaml_groups_string, sidecar_groups_string], ids=lambda f: f.__name__
)
def test_a_document_whose_metadata_is_broken_is_held_back_not_given_default_groups(folders, make):
    folder, outside = folders
    make(folder, outside)
    result = ingest_folder(folder, ["public"])
    assert "good" not in {d["id"] for d in result.documents}
    assert any(p.file.endswith("good.txt") for p in result.problems)


def test_a_symlink_inside_the_folder_is_followed(folders):
    folder, _ = folders
    os.symlink(folder / "good.txt", folder / "alias.txt")
    result = ingest_folder(folder, ["public"])
    assert result.problems == [] and {d["id"] for d in result.documents} == {"good", "alias"}


@pytest.mark.parametrize("name", ["symlink to a file outside", "_metadata.yaml groups null"])
def test_ingest_command_exits_4_and_writes_nothing(folders, tmp_path, name):
    folder, outside = folders
    CASES[name][0](folder, outside)
    out = tmp_path / "corpus.jsonl"
    result = CliRunner().invoke(app, ["ingest", str(folder), "--out", str(out)])
    assert result.exit_code == 4, result.output
    assert "rule '" in result.output and "nothing written" in result.output
    assert not out.exists()


def test_ingest_command_refuses_a_wildcard_group_with_exit_2(folders, tmp_path):
    folder, _ = folders
    out = tmp_path / "corpus.jsonl"
    result = CliRunner().invoke(app, ["ingest", str(folder), "--out", str(out), "-g", "*"])
    assert result.exit_code == 2 and "no wildcards" in result.output and not out.exists()


def test_ingest_command_writes_a_clean_folder(folders, tmp_path):
    folder, _ = folders
    out = tmp_path / "corpus.jsonl"
    result = CliRunner().invoke(app, ["ingest", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [d["id"] for d in read_jsonl(out)] == ["good"]


def test_corpus_jsonl_that_is_not_utf8_names_file_line_and_rule(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "text": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"corpus.jsonl, line 2: rule 'UTF-8' failed"):
        read_jsonl(path)


def resolve(settings, corpus):
    from flows.steps.reindex import resolve_corpora

    return resolve_corpora.fn(settings, corpus)


def test_two_corpora_with_the_same_name_are_refused_before_anything_is_ingested(settings, tmp_path):
    from tasks.validation import DatasetValidationError

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "notes").mkdir(parents=True)
    (tmp_path / "a" / "notes.jsonl").write_text('{"id": "x"}\n')
    good_doc(tmp_path / "b" / "notes")
    ingested = settings.state / "ingested" / "notes.jsonl"
    with pytest.raises(DatasetValidationError, match="rule 'unique corpus name' failed"):
        resolve(settings, [str(tmp_path / "a" / "notes.jsonl"), str(tmp_path / "b" / "notes")])
    assert not ingested.exists()
    with pytest.raises(DatasetValidationError, match="rule 'corpus exists' failed"):
        resolve(settings, [str(tmp_path / "missing.jsonl")])


def test_a_corpus_file_that_is_not_utf8_stops_the_reindex_with_a_validation_error(
    settings, tmp_path
):
    from flows.steps.reindex import validate_corpus
    from tasks.validation import DatasetValidationError

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a", "text": "\xff"}\n')
    with pytest.raises(DatasetValidationError, match="line 1: rule 'UTF-8' failed"):
        validate_corpus.fn(settings, {"c": str(path)})
