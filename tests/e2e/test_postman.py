"""The Postman collection, run by newman against a live gateway (in front of the fake
upstream). Its per-request latencies are printed in the test output; timing is not
asserted (the collection's ``assert_latency`` stays false)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, GatewayProcess
from tests.deploy.npm_tools import npm_tool

COLLECTION = ROOT / "postman_collection.json"
# What the seed promises the collection covers, as (method, path) of its requests.
SEED_REQUESTS = {
    ("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
    ("POST", "/v1/chat"), ("POST", "/v1/documents"), ("GET", "/v1/documents"),
    ("GET", "/v1/memories"), ("POST", "/v1/memories/search"), ("GET", "/metrics"),
}  # fmt: skip
VARIABLES = {"base_url", "api_key", "dev_key", "admin_key", "assert_latency"}


def requests_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        found.extend(requests_of(item["item"]) if "item" in item else [item])
    return found


def test_collection_has_the_seed_requests() -> None:
    collection = json.loads(COLLECTION.read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    requests = requests_of(collection["item"])
    assert len(requests) >= 16
    paths = {
        (r["request"]["method"], "/" + "/".join(r["request"]["url"]["path"])) for r in requests
    }
    assert paths >= SEED_REQUESTS
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert set(variables) >= VARIABLES
    assert variables["assert_latency"] == "false"
    for request in requests:
        tests = [e for e in request["event"] if e["listen"] == "test"]
        assert tests
        assert "pm.response.to.have.status" in "\n".join(tests[0]["script"]["exec"])
    scenario = [r for r in requests if r["name"].startswith("Scenario")]
    assert len(scenario) >= 2
    assert all('"user_id": "{{scenario_user}}"' in r["request"]["body"]["raw"] for r in scenario)


def latency_table(executions: list[dict[str, Any]]) -> str:
    lines = ["", "newman: per-request latency"]
    for execution in executions:
        response = execution.get("response", {})
        lines.append(
            f"  {response.get('responseTime', '-'):>6} ms  {response.get('code', '---')}  "
            f"{execution['item']['name']}"
        )
    return "\n".join(lines)


def test_collection_passes_against_a_live_gateway(
    fake_gateway: GatewayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newman = npm_tool("newman", "6", "newman")
    report = tmp_path / "newman.json"
    done = subprocess.run(
        [str(newman), "run", str(COLLECTION), "--env-var", f"base_url={fake_gateway.url}",
         "--reporters", "cli,json", "--reporter-json-export", str(report),
         "--color", "off", "--disable-unicode", "--timeout-request", "60000"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert report.exists(), f"newman did not run:\n{done.stdout}\n{done.stderr}"
    run = json.loads(report.read_text())["run"]
    with capsys.disabled():
        print(latency_table(run["executions"]))
    failures = [
        f"{f['source']['name']}: {f['error'].get('test', '')} {f['error']['message']}"
        for f in run["failures"]
    ]
    assert run["stats"]["assertions"]["failed"] == 0, "\n".join(failures)
    assert not failures, "\n".join(failures)
    assert run["stats"]["requests"]["total"] >= 16
    assert done.returncode == 0, done.stdout[-3000:]
