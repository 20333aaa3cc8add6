"""The dispatcher's and worker's HTTP session: requests' own environment settings, read once a target."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import requests.sessions
from servo.dispatch._http import EnvOnceSession

URLS = ("http://127.0.0.1:8081/dispatch", "https://api.example.com/v1/x", "http://internal.corp:9/y")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTP_PROXY": "http://proxy:3128", "HTTPS_PROXY": "http://proxy:3129"},
        {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1,internal.corp"},
        {"REQUESTS_CA_BUNDLE": "/etc/ca.pem"},
    ],
)
def test_settings_equal_requests_own(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours, theirs = EnvOnceSession(), requests.Session()
    for url in URLS:
        for args in ((None, None, None), (True, False, None), (None, "/other.pem", ("c", "k"))):
            expected = theirs.merge_environment_settings(url, {}, *args)
            assert ours.merge_environment_settings(url, {}, *args) == expected
            assert ours.merge_environment_settings(url, {}, *args) == expected  # the kept answer


def test_the_environment_is_read_once_per_target(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: Any = None) -> dict[str, str]:
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    session = EnvOnceSession()
    for _ in range(3):
        session.merge_environment_settings("http://127.0.0.1:8081/dispatch", {}, None, None, None)
        session.merge_environment_settings("http://127.0.0.1:8081/other", {}, None, None, None)
    assert reads == ["http://127.0.0.1:8081/dispatch"]
    session.proxies["http"] = "http://changed:1"  # the session's own settings are part of the answer
    settings = session.merge_environment_settings("http://127.0.0.1:8081/dispatch", {}, None, None, None)
    assert settings["proxies"]["http"] == "http://changed:1"


def test_a_kept_answer_cannot_be_changed_by_its_user() -> None:
    session = EnvOnceSession()
    first = session.merge_environment_settings("http://127.0.0.1:1/", {}, None, None, None)
    first["proxies"]["http"] = "http://tampered:1"
    again = session.merge_environment_settings("http://127.0.0.1:1/", {}, None, None, None)
    assert "http" not in again["proxies"] or again["proxies"]["http"] != "http://tampered:1"
