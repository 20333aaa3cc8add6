"""Config precedence: flags > environment > servo.toml > defaults, against a real control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servo.cli._config import resolve_config
from servo.cli._errors import CliError
from servo.dev.embedded import EmbeddedStack

from tests.cli.conftest import invoke

DEAD_URL = "http://127.0.0.1:9"


def _toml(folder: Path, body: str) -> Path:
    (folder / "servo.toml").write_text(body, encoding="utf-8")
    return folder


def test_defaults_without_anything(tmp_path: Path) -> None:
    config = resolve_config({}, env={}, cwd=tmp_path)
    assert (config.api_url, config.workspace, config.tenant, config.token) == (
        "http://127.0.0.1:8080",
        "default",
        "default",
        None,
    )
    assert config.config_file is None
    assert config.sources["api_url"] == "default"


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    _toml(
        tmp_path,
        '[api]\nurl = "http://toml:1"\nworkspace = "ws_toml"\ntenant = "t_toml"\ntoken = "tok_toml"\n',
    )
    env = {"SERVO_WORKSPACE": "ws_env", "SERVO_TENANT": "t_env", "SERVO_TOKEN": "tok_env"}
    config = resolve_config({"tenant": "t_flag"}, env=env, cwd=tmp_path)
    assert config.api_url == "http://toml:1"
    assert config.workspace == "ws_env"
    assert config.tenant == "t_flag"
    assert config.token == "tok_env"
    assert config.sources == {
        "api_url": "servo.toml api.url",
        "workspace": "env SERVO_WORKSPACE",
        "tenant": "flag",
        "token": "env SERVO_TOKEN",
    }


def test_empty_environment_values_do_not_override(tmp_path: Path) -> None:
    _toml(tmp_path, '[api]\nworkspace = "ws_toml"\n')
    assert resolve_config({}, env={"SERVO_WORKSPACE": ""}, cwd=tmp_path).workspace == "ws_toml"


def test_servo_toml_is_found_in_a_parent_directory(tmp_path: Path) -> None:
    _toml(tmp_path, '[api]\nworkspace = "parent"\n')
    nested = tmp_path / "assets" / "deep"
    nested.mkdir(parents=True)
    config = resolve_config({}, env={}, cwd=nested)
    assert config.workspace == "parent"
    assert config.project_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[api\nurl=1", "invalid"),
        ("[api]\nurl = 5\n", "api.url must be a string"),
        ('api = "x"\n', "[api] must be a table"),
        ('[api]\nurl = "ftp://x"\n', "expected http(s)://host:port"),
    ],
)
def test_bad_servo_toml_is_one_clear_error(tmp_path: Path, body: str, message: str) -> None:
    _toml(tmp_path, body)
    with pytest.raises(CliError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve_config({}, env={}, cwd=tmp_path)


def test_env_beats_servo_toml_against_a_real_api(stack: EmbeddedStack) -> None:
    _toml(Path.cwd(), f'[api]\nurl = "{DEAD_URL}"\n')
    result = invoke("status", "--json", env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"runs": []}


def test_servo_toml_beats_defaults_against_a_real_api(stack: EmbeddedStack) -> None:
    _toml(Path.cwd(), f'[api]\nurl = "{stack.api_url}"\nworkspace = "from_toml"\n')
    result = invoke("run", "demo.a")
    # The toml workspace was used: nothing is deployed there, and the API says so.
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: no manifest deployed in workspace 'from_toml'; run `servo deploy` first"
    )


def test_flag_beats_env_and_names_its_source(stack: EmbeddedStack) -> None:
    result = invoke("status", "--api-url", DEAD_URL, env={"SERVO_API_URL": stack.api_url})
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach the Servo API at {DEAD_URL}: is `servo dev` running? (API URL from flag)\n"
    )


def test_workspace_flag_scopes_the_request(deployed: EmbeddedStack) -> None:
    env = {"SERVO_API_URL": deployed.api_url}
    assert invoke("run", "demo.a", "--json", env=env).exit_code == 0
    other = invoke("status", "--json", "-w", "other", env=env)
    assert json.loads(other.stdout) == {"runs": []}
    default = invoke("status", "--json", env=env)
    assert len(json.loads(default.stdout)["runs"]) == 1


def test_tenant_is_sent_as_header(deployed: EmbeddedStack) -> None:
    env = {"SERVO_API_URL": deployed.api_url, "SERVO_TENANT": "acme"}
    result = invoke("run", "demo.a", env=env)
    # Tenant "acme" has no manifest: the tenant header reached the API.
    assert result.exit_code == 1
    assert "no manifest deployed" in result.stderr
