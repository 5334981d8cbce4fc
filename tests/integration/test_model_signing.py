"""serve-model only loads model versions this project registered: an unsigned version, a
foreign version wearing a copied signature and a signed version changed in the artifact store
after registration are all refused before anything is unpickled."""

from pathlib import Path

import pytest
import yaml

import mlflow

pytestmark = pytest.mark.integration

NAME = "signing-test-model"


class Echo(mlflow.pyfunc.PythonModel):
    def __init__(self, marker: str):
        self.marker = marker

    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture(scope="module")
def signed_settings(stack, settings, tmp_path_factory):
    """Settings whose hybrid model name is this test's own (the suite's model is left alone)."""
    params = yaml.safe_load(settings.params_path.read_text())
    params["registry"]["hybrid_model_name"] = NAME
    path = tmp_path_factory.mktemp("signing") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return settings.model_copy(update={"params_file": path})


def _log(marker: str):
    mlflow.set_experiment("signing-test")
    with mlflow.start_run():
        return mlflow.pyfunc.log_model(name="model", python_model=Echo(marker))


def _register(info, tags=None) -> str:
    return str(mlflow.register_model(info.model_uri, NAME, tags=tags or {}).version)


def test_signed_unsigned_copied_and_tampered_versions(signed_settings):
    from dualengine.hybrid_model import serve_command
    from dualengine.model_signing import (
        SIGNATURE_TAG,
        ModelSignatureError,
        download_signed,
        verified_model_dir,
    )
    from mlflow import MlflowClient

    good = _log("ours")
    tag = download_signed(signed_settings, good.model_uri, NAME)
    signed = _register(good, {SIGNATURE_TAG: tag})
    MlflowClient().set_registered_model_alias(NAME, "champion", signed)

    version, folder = verified_model_dir(signed_settings, NAME, "champion")
    assert version == signed and (folder / "MLmodel").exists()
    command = serve_command(signed_settings, 5999, "champion")
    assert command[command.index("-m") + 1] == str(folder)
    assert command[command.index("-h") + 1] == "127.0.0.1"

    unsigned = _register(_log("theirs"))
    with pytest.raises(ModelSignatureError, match=f"no {SIGNATURE_TAG} tag"):
        verified_model_dir(signed_settings, NAME, unsigned)

    copied = _register(_log("theirs"), {SIGNATURE_TAG: tag})
    MlflowClient().set_registered_model_alias(NAME, "champion", copied)
    with pytest.raises(ModelSignatureError, match="do not match"):
        serve_command(signed_settings, 5999, "champion")

    from dualengine.service_specs import mlflow_store

    pickles = [
        p
        for p in (mlflow_store(signed_settings) / "artifacts").rglob("python_model.pkl")
        if good.model_id in str(p)
    ]
    assert len(pickles) == 1
    Path(pickles[0]).write_bytes(Path(pickles[0]).read_bytes() + b"\n")
    with pytest.raises(ModelSignatureError, match="do not match"):
        verified_model_dir(signed_settings, NAME, signed)
    assert not list((signed_settings.state / "served").glob(f".{NAME}-*"))  # no leftovers
