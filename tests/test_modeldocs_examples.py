"""The model page's copy-ready examples run: each is taken from the page a live gateway serves (so it calls that
gateway's own host), the placeholder key is replaced by a real workspace key, and it is run as a person would
(python, bash + curl, node, php, go) against the gateway, which routes it to a mock Azure OpenAI upstream.

The streaming programs must print exactly the answer's text; the curl one must show the SSE events ending with
`data: [DONE]`. The non-stream variants (a payload with `"stream": false`) must print the `chat.completion`.
A language whose toolchain is missing on this machine is skipped, by name (C# needs a .NET SDK).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modeldocs.examples import PLACEHOLDER_KEY, build_examples
from tests.gateway_fixtures import gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

LANGUAGES = ("python", "curl", "javascript", "php", "go", "csharp")


def _has_php_curl() -> bool:
    if not shutil.which("php"):
        return False
    probe = subprocess.run(["php", "-r", "echo function_exists('curl_init') ? 'yes' : 'no';"], capture_output=True)
    return probe.stdout == b"yes"


def command_for(language: str, code: str, where: Path) -> list[str]:
    """Save the program as a person would and return the command that runs it (skip if the tool is missing)."""
    if language == "python":
        (where / "example.py").write_text(code)
        return [sys.executable, "example.py"]
    if language == "curl":
        if not shutil.which("curl"):
            pytest.skip("curl is not installed")
        (where / "example.sh").write_text(code)
        return ["bash", "example.sh"]
    if language == "javascript":
        if not shutil.which("node"):
            pytest.skip("node is not installed")
        (where / "example.mjs").write_text(code)
        return ["node", "example.mjs"]
    if language == "php":
        if not _has_php_curl():
            pytest.skip("php with the curl extension is not installed (Debian: php-cli php-curl)")
        (where / "example.php").write_text(code)
        return ["php", "example.php"]
    if language == "go":
        if not shutil.which("go"):
            pytest.skip("go is not installed (Debian: golang-go)")
        (where / "main.go").write_text(code)
        return ["go", "run", "main.go"]
    if language == "csharp":
        if not shutil.which("dotnet"):
            pytest.skip("no .NET SDK on this machine: the C# example is checked for its embedded payload only")
        subprocess.run(["dotnet", "new", "console", "--force", "-o", "."], cwd=where, check=True, capture_output=True)
        (where / "Program.cs").write_text(code)
        return ["dotnet", "run"]
    raise AssertionError(language)


def run(language: str, code: str, where: Path) -> subprocess.CompletedProcess:
    command = command_for(language, code, where)
    env = {**os.environ, "GOCACHE": str(where / "gocache"), "GOPATH": str(where / "gopath"), "GO111MODULE": "off"}
    return subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=120, env=env)


def page_examples(gateway, slug: str) -> dict[str, str]:
    page = httpx.get(f"{gateway.url}/docs/models/{slug}", timeout=10)
    assert page.status_code == 200
    found = dict(re.findall(r'<pre id="example-([a-z]+)-code"[^>]*><code>(.*?)</code></pre>', page.text, re.S))
    assert set(found) == set(LANGUAGES)
    return {name: html.unescape(code) for name, code in found.items()}


def sse_text(output: str) -> tuple[str, list[str]]:
    data = [line[len("data: ") :] for line in output.splitlines() if line.startswith("data: ")]
    text = "".join(
        (choice["delta"].get("content") or "")
        for item in data
        if item != "[DONE]"
        for choice in json.loads(item)["choices"]
    )
    return text, data


@pytest.fixture
def served(gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream)
    return gateway


@pytest.fixture
def expected_text(served, world) -> str:
    """The answer's text for the page's payload, asked once without streaming."""
    from billing.models import Model

    payload = {**Model.objects.get(slug="codex-mini").spec["example"], "stream": False}
    answer = httpx.post(
        served.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=payload, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_streaming_example_from_the_served_page_runs_against_the_gateway(
    language, served, world, mock_upstream, expected_text, tmp_path
):
    code = page_examples(served, "codex-mini")[language]
    assert f"{served.url}/api/v1/chat/completions" in code  # the host the page was served from
    assert PLACEHOLDER_KEY in code
    done = run(language, code.replace(PLACEHOLDER_KEY, world.key), tmp_path)
    assert done.returncode == 0, done.stderr
    if language == "curl":
        text, events = sse_text(done.stdout)
        assert events[-1] == "[DONE]" and text == expected_text
    else:
        assert done.stdout == expected_text + "\n"
    sent = mock_upstream.last.json
    assert sent["stream"] is True and sent["messages"][-1]["content"].startswith("Explain this model")


@pytest.mark.parametrize("language", LANGUAGES)
def test_non_stream_example_prints_the_completion(language, served, world, expected_text, tmp_path):
    from billing.models import Model

    payload = {**Model.objects.get(slug="codex-mini").spec["example"], "stream": False}
    examples = {e.slug: e.code for e in build_examples(payload=payload, endpoint=served.api + "/chat/completions")}
    done = run(language, examples[language].replace(PLACEHOLDER_KEY, world.key), tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["object"] == "chat.completion" and answer["model"] == "codex-mini"
    assert answer["choices"][0]["message"]["content"] == expected_text
    assert answer["usage"]["cost"]


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "curl"])
def test_an_error_answer_is_reported_with_a_non_zero_exit(language, served, tmp_path):
    code = page_examples(served, "codex-mini")[language]  # the placeholder key is refused: 401
    done = run(language, code, tmp_path)
    assert done.returncode != 0
    assert "401" in done.stderr or "401" in done.stdout or "Incorrect API key" in done.stderr + done.stdout
