"""Per-install secrets: created 0600 in a 0700 folder from the start, stable, never followed
through a link or read when others can read them; clients pick configured credentials first."""

import os
import stat

import pytest

from dualengine import credentials, endpoints, service_specs
from dualengine.settings import Settings
from dualengine.weaviate_server import auth_environment, server_environment


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def no_configured_credentials(monkeypatch):
    """The session exports the test stack's credentials; these tests start from none."""
    _clear_credential_env(monkeypatch)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # a careless umask must not leak into the files' modes
    yield
    os.umask(old)


def test_secret_is_created_private_and_stays_the_same(tmp_path, open_umask):
    settings = Settings(state_dir=tmp_path / "state")
    value, created = credentials.generated_secret(settings, "k")
    again, created_again = credentials.generated_secret(settings, "k")
    assert created and not created_again and value == again and len(value) >= 32
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(tmp_path / "state" / "secrets") == 0o700
    assert _mode(tmp_path / "state" / "secrets" / "k") == 0o600
    assert not [p for p in (tmp_path / "state" / "secrets").iterdir() if p.name != "k"]


def test_existing_open_state_folder_is_tightened(tmp_path):
    (tmp_path / "state").mkdir(mode=0o755)
    os.chmod(tmp_path / "state", 0o755)
    credentials.generated_secret(Settings(state_dir=tmp_path / "state"), "k")
    assert _mode(tmp_path / "state") == 0o700


def test_a_secret_others_can_read_is_refused(tmp_path):
    settings = Settings(state_dir=tmp_path)
    credentials.generated_secret(settings, "k")
    os.chmod(tmp_path / "secrets" / "k", 0o644)
    with pytest.raises(credentials.SecretFileError, match="readable by others"):
        credentials.generated_secret(settings, "k")


def test_a_secret_that_is_a_link_is_refused(tmp_path):
    settings = Settings(state_dir=tmp_path)
    credentials.private_dir(tmp_path / "secrets")
    target = tmp_path / "elsewhere"
    target.write_text("attacker-chosen")
    os.chmod(target, 0o600)
    (tmp_path / "secrets" / "k").symlink_to(target)
    with pytest.raises(credentials.SecretFileError, match="regular file"):
        credentials.generated_secret(settings, "k")


def test_empty_secret_is_refused(tmp_path):
    settings = Settings(state_dir=tmp_path)
    credentials.private_dir(tmp_path / "secrets")
    credentials.write_private(tmp_path / "secrets" / "k", "\n")
    with pytest.raises(credentials.SecretFileError, match="empty"):
        credentials.generated_secret(settings, "k")


def test_write_private_replaces_with_mode_0600(tmp_path, open_umask):
    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, 0o644)
    credentials.write_private(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_local_servers_use_configured_credentials_so_clients_agree(tmp_path, monkeypatch):
    import configparser

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p%w")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "bob:pw2")
    monkeypatch.setenv("DUALENGINE_WEAVIATE_API_KEY", "wk")
    settings = Settings(state_dir=tmp_path)
    local = credentials.local_secrets(settings)
    assert (local.mlflow_admin_username, local.mlflow_admin_password) == ("alice", "p%w")
    assert local.prefect_auth_string == "bob:pw2" and local.weaviate_api_key == "wk"
    parser = configparser.ConfigParser()
    parser.read(service_specs.mlflow_auth_config(settings))
    assert parser["mlflow"]["admin_password"] == "p%w"  # '%' survives interpolation
    (tmp_path / "mlflow-auth" / "basic_auth.db").write_text("users")
    service_specs.mlflow_auth_config(settings)
    assert (tmp_path / "mlflow-auth" / "basic_auth.db").exists()  # same admin: kept
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "new")
    service_specs.mlflow_auth_config(Settings(state_dir=tmp_path))
    assert not (tmp_path / "mlflow-auth" / "basic_auth.db").exists()  # other admin: replaced


def test_local_secrets_are_distinct_and_the_webhook_key_is_a_fernet_key(tmp_path, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.delenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", raising=False)
    one = credentials.local_secrets(Settings(state_dir=tmp_path / "a"))
    other = credentials.local_secrets(Settings(state_dir=tmp_path / "b"))
    values = [
        one.weaviate_api_key,
        one.mlflow_admin_password,
        one.prefect_auth_string.split(":", 1)[1],
    ]
    assert len(set(values)) == 3
    assert one.prefect_auth_string.startswith(f"{credentials.PREFECT_USER}:")
    assert one.weaviate_api_key != other.weaviate_api_key  # per install, not a constant
    assert one.webhook_encryption_key != other.webhook_encryption_key
    Fernet(one.webhook_encryption_key.encode())  # raises when it is not a valid key


def _clear_credential_env(monkeypatch) -> None:
    for name in (
        "DUALENGINE_WEAVIATE_API_KEY",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "DUALENGINE_MLFLOW_USERNAME",
        "DUALENGINE_MLFLOW_PASSWORD",
        "PREFECT_API_AUTH_STRING",
        "DUALENGINE_PREFECT_AUTH_STRING",
    ):
        monkeypatch.delenv(name, raising=False)


def test_clients_use_generated_secrets_only_for_managed_services(tmp_path, monkeypatch):
    _clear_credential_env(monkeypatch)
    settings = Settings(state_dir=tmp_path)
    assert credentials.client_credentials(settings, []).environment() == {}  # never creates
    assert not (tmp_path / "secrets").exists()
    local = credentials.local_secrets(settings)
    managed = credentials.client_credentials(settings, [])
    assert managed.weaviate_api_key == local.weaviate_api_key
    assert (managed.mlflow_username, managed.mlflow_password) == (
        "admin",
        local.mlflow_admin_password,
    )
    assert managed.prefect_auth_string == local.prefect_auth_string
    external = credentials.client_credentials(settings, ["prefect", "mlflow", "weaviate"])
    assert external.environment() == {}  # local secrets never go to someone else's server


def test_configured_credentials_win(tmp_path, monkeypatch):
    _clear_credential_env(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "bob:pw2")
    monkeypatch.setenv("DUALENGINE_WEAVIATE_API_KEY", "wk")
    settings = Settings(state_dir=tmp_path)
    credentials.local_secrets(settings)
    creds = credentials.client_credentials(settings, [])
    assert creds.environment() == {
        "DUALENGINE_WEAVIATE_API_KEY": "wk",
        "MLFLOW_TRACKING_USERNAME": "alice",
        "MLFLOW_TRACKING_PASSWORD": "pw",
        "PREFECT_API_AUTH_STRING": "bob:pw2",
    }


def test_export_endpoints_hands_credentials_to_children(tmp_path, monkeypatch):
    _clear_credential_env(monkeypatch)
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    settings = Settings(state_dir=tmp_path)
    local = credentials.local_secrets(settings)
    endpoints.export_endpoints(settings)
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == local.mlflow_admin_password
    assert os.environ["PREFECT_API_AUTH_STRING"] == local.prefect_auth_string
    assert os.environ["DUALENGINE_WEAVIATE_API_KEY"] == local.weaviate_api_key


def test_mlflow_auth_config_is_private_and_denies_by_default(tmp_path, open_umask):
    settings = Settings(state_dir=tmp_path)
    path = service_specs.mlflow_auth_config(settings)
    text = path.read_text()
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert "default_permission = NO_PERMISSIONS" in text
    assert f"admin_password = {credentials.local_secrets(settings).mlflow_admin_password}" in text
    assert f"sqlite:///{path.parent / 'basic_auth.db'}" in text


def test_mlflow_server_runs_the_basic_auth_app_with_generated_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("DUALENGINE_MLFLOW_STORE", str(tmp_path / "store"))
    settings = Settings(state_dir=tmp_path / "state")
    command, env, _ = service_specs._mlflow_spec(settings)
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    local = credentials.local_secrets(settings)
    assert env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] == local.webhook_encryption_key
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == local.mlflow_flask_secret_key


def test_prefect_server_requires_the_auth_string(tmp_path):
    settings = Settings(state_dir=tmp_path)
    _, env, _ = service_specs._prefect_spec(settings)
    assert (
        env["PREFECT_SERVER_API_AUTH_STRING"]
        == credentials.local_secrets(settings).prefect_auth_string
    )
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1"


def test_weaviate_node_has_api_key_auth_and_no_anonymous_access(tmp_path):
    env = server_environment(tmp_path, 8080, 50051, 7100, "the-key")
    assert env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert env["AUTHENTICATION_APIKEY_ENABLED"] == "true"
    assert env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"] == "the-key"
    assert env["AUTHORIZATION_ADMINLIST_USERS"] == env["AUTHENTICATION_APIKEY_USERS"]
    for bad in ("", "a,b"):
        with pytest.raises(ValueError):
            auth_environment(bad)
