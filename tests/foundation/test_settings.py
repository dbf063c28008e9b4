"""Settings load from BLENDTUNE_* variables; bad values stop start-up naming the variable."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, env_name, load_settings
from tests.support import ROOT


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.effective_storage_dir == os.path.join(".data", "storage")


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "BLENDTUNE_PORT": "9001",
            "BLENDTUNE_SMTP_STARTTLS": "false",
            "BLENDTUNE_WS_AUTH_TIMEOUT_SECONDS": "2.5",
            "BLENDTUNE_DATABASE_URL": "postgresql://db/x",
            "UNRELATED": "ignored",
        }
    )
    assert settings.port == 9001
    assert settings.smtp_starttls is False
    assert settings.ws_auth_timeout_seconds == 2.5
    assert settings.database_url == "postgresql://db/x"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("BLENDTUNE_PORT", "eighty", "BLENDTUNE_PORT='eighty' is invalid"),
        ("BLENDTUNE_PORT", "70000", "BLENDTUNE_PORT='70000' is invalid"),
        ("BLENDTUNE_WORKERS", "0", "BLENDTUNE_WORKERS='0' is invalid"),
        ("BLENDTUNE_LOG_LEVEL", "loud", "BLENDTUNE_LOG_LEVEL='loud' is invalid"),
        ("BLENDTUNE_SMTP_STARTTLS", "maybe", "BLENDTUNE_SMTP_STARTTLS='maybe' is invalid"),
        ("BLENDTUNE_PROT", "8000", "BLENDTUNE_PROT is not a known setting"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert words in str(info.value)


def test_cli_reports_bad_settings_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    env["BLENDTUNE_PORT"] = "eighty"
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BLENDTUNE_PORT='eighty' is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in map(env_name, Settings.__struct_fields__) if f"`{n}`" not in readme]
    assert missing == []


def _serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`blendtune serve` from ``cwd`` with no BLENDTUNE_* variable but ``env``: on its own it
    would create ``.data`` there and start the embedded services."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BLENDTUNE_")}
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--port", "70000"), "blendtune: --port '70000' is invalid: Expected `int` <= 65535"),
        (("--port", "eighty"), "blendtune: --port 'eighty' is invalid"),
        (("--workers", "0"), "blendtune: --workers '0' is invalid: Expected `int` >= 1"),
    ],
)
def test_a_bad_flag_is_one_line_naming_the_flag_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...], line: str
) -> None:
    result = _serve(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(line), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []  # no .data, no PostgreSQL cluster


def test_a_busy_port_is_found_before_the_embedded_services_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        by_flag = _serve(tmp_path, "--port", str(port))
        by_variable = _serve(tmp_path, env={"BLENDTUNE_PORT": str(port)})
    assert by_flag.returncode == 2
    assert by_flag.stderr.strip() == (
        f"blendtune: cannot listen on 127.0.0.1:{port} (--port {port}): Address already in use"
    )
    assert by_variable.returncode == 2
    assert f"(BLENDTUNE_PORT={port}): Address already in use" in by_variable.stderr
    assert len(by_variable.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_run_with_no_command_prints_the_help(tmp_path: Path) -> None:
    # A virtualenv that ./run finds up to date (its marker is newer than pyproject.toml), so
    # that the test never rebuilds one: only the CLI of the one running the tests.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "blendtune").symlink_to(Path(sys.executable).with_name("blendtune"))
    (venv / ".installed").touch()
    result = subprocess.run(
        [str(ROOT / "run")],
        env={**os.environ, "BLENDTUNE_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: blendtune")
    assert "serve" in result.stdout and "No such command" not in result.stderr
