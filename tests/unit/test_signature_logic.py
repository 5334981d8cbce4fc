"""The signature of a packed model: every file counts, links are refused, and only this
install's key over this model name verifies."""

import pytest

from dualengine.model_signing import (
    SIGNATURE_TAG,
    ModelSignatureError,
    artifact_digest,
    sign_folder,
    verify_folder,
)
from dualengine.settings import Settings


def _model(folder):
    (folder / "artifacts").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "python_model.pkl").write_bytes(b"\x80\x04pickle")
    (folder / "artifacts" / "params.yaml").write_text("a: 1\n")
    return folder


def test_every_file_and_name_counts(tmp_path):
    folder = _model(tmp_path / "m")
    digest = artifact_digest(folder)
    assert artifact_digest(folder) == digest
    (folder / "python_model.pkl").write_bytes(b"\x80\x04pickle!")
    assert artifact_digest(folder) != digest
    (folder / "python_model.pkl").write_bytes(b"\x80\x04pickle")
    (folder / "artifacts" / "params.yaml").rename(folder / "artifacts" / "other.yaml")
    assert artifact_digest(folder) != digest
    (folder / "artifacts" / "other.yaml").rename(folder / "artifacts" / "params.yaml")
    (folder / "extra.py").write_text("import os\n")
    assert artifact_digest(folder) != digest
    (folder / "extra.py").unlink()
    (folder / "registered_model_meta").write_text("model_name: x\n")  # the client writes it
    assert artifact_digest(folder) == digest


def test_links_are_refused(tmp_path):
    folder = _model(tmp_path / "m")
    (folder / "link").symlink_to(tmp_path)
    with pytest.raises(ModelSignatureError, match="links"):
        artifact_digest(folder)


def test_only_this_installs_signature_of_this_model_verifies(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    folder = _model(tmp_path / "m")
    tag = sign_folder(settings, "dualengine-hybrid", folder)
    verify_folder(settings, "dualengine-hybrid", "1", folder, tag)
    with pytest.raises(ModelSignatureError, match=f"no {SIGNATURE_TAG} tag"):
        verify_folder(settings, "dualengine-hybrid", "1", folder, None)
    with pytest.raises(ModelSignatureError, match="do not match"):
        verify_folder(settings, "other-model", "1", folder, tag)
    other_install = Settings(state_dir=tmp_path / "other-state", model_signing_key="k2")
    with pytest.raises(ModelSignatureError, match="do not match"):
        verify_folder(other_install, "dualengine-hybrid", "1", folder, tag)
    (folder / "python_model.pkl").write_bytes(b"evil")
    with pytest.raises(ModelSignatureError, match="do not match"):
        verify_folder(settings, "dualengine-hybrid", "1", folder, tag)


def test_no_key_means_no_load(tmp_path):
    folder = _model(tmp_path / "m")
    with pytest.raises(ModelSignatureError, match="no model-signing key"):
        verify_folder(Settings(state_dir=tmp_path / "s"), "m", "1", folder, "hmac-sha256-v1:00")
    assert not (tmp_path / "s" / "secrets").exists()  # checking never creates a key
