"""``gateway ingest`` as a user runs it: a subprocess sending files to a live gateway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests import document_files
from tests.conftest import ROOT, GatewayProcess, free_port
from tests.e2e.clients import api_client
from tests.e2e.conftest import DEVELOPER_KEY, STANDARD_KEY
from tests.e2e.test_documents import all_documents

CORPUS_SOURCES = {
    "baggage-rules.md",
    "destinations/asia.md",
    "destinations/europe.md",
    "loyalty-program.md",
    "refund-policy.md",
    "support-hours.md",
    "travel-insurance.md",
}
SUMMARY = re.compile(
    r"^ingested (?P<done>\d+) of (?P<files>\d+) files \((?P<added>\d+) added, "
    r"(?P<replaced>\d+) replaced; (?P<chunks>\d+) chunks\) "
    r"in \d+\.\d s; (?P<failed>\d+) failed(, (?P<unsent>\d+) not sent)?$",
    re.MULTILINE,
)


def gateway_ingest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway.cli ingest ARGS`` from the repository's root, with only
    ``env`` of the gateway's own variables set."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "ingest", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    found = SUMMARY.search(result.stdout)
    assert found, f"no summary line:\n{result.stdout}\n{result.stderr}"
    return {name: int(value or 0) for name, value in found.groupdict().items()}


def sources_of(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    with api_client(gateway) as client:
        return {d["source"]: d for d in all_documents(client)}


def test_ingests_the_sample_corpus(fake_gateway: GatewayProcess) -> None:
    result = gateway_ingest("examples/corpus", "--url", fake_gateway.url, "--key", DEVELOPER_KEY)
    assert result.returncode == 0, result.stderr
    totals = summary(result)
    assert (totals["done"], totals["files"], totals["failed"]) == (7, 7, 0)
    listed = sources_of(fake_gateway)
    assert set(listed) >= CORPUS_SOURCES
    assert sum(listed[s]["chunk_count"] for s in CORPUS_SOURCES) == totals["chunks"]
    assert len(re.findall(r"^\[\s*\d/7\] ", result.stderr, re.MULTILINE)) == 7, result.stderr


def test_a_bad_file_is_named_and_the_others_are_ingested(
    fake_gateway: GatewayProcess, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    (tmp_path / "notes").mkdir()
    (tmp_path / f"{tag}-good.md").write_text("# Good\n\nA readable file.")
    (tmp_path / "notes" / f"{tag}-more.txt").write_text("Another readable file.")
    (tmp_path / f"{tag}-latin1.md").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / f"{tag}-gone.md").symlink_to(tmp_path / "nowhere.md")  # unreadable
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    result = gateway_ingest(str(tmp_path), "--url", fake_gateway.url, "--key", DEVELOPER_KEY)
    assert result.returncode == 1, result.stderr
    totals = summary(result)
    assert (totals["done"], totals["files"], totals["failed"]) == (2, 4, 2)
    assert re.search(rf"{tag}-latin1\.md: error: not UTF-8", result.stderr), result.stderr
    assert re.search(rf"{tag}-gone\.md: error: cannot read", result.stderr), result.stderr
    assert "skipped" in result.stderr
    assert "picture.png" in result.stderr
    listed = sources_of(fake_gateway)
    assert {f"{tag}-good.md", f"notes/{tag}-more.txt"} <= set(listed)
    assert f"{tag}-latin1.md" not in listed


GATEWAY_LIMIT = 10_485_760  # the default GATEWAY_MAX_DOCUMENT_BYTES of fake_gateway


@pytest.mark.parametrize(
    ("max_bytes", "error"),
    [
        (GATEWAY_LIMIT, r"error: too large: \d+ bytes, the limit is 10485760"),
        (2 * GATEWAY_LIMIT, r"error: the gateway answered 413: Request body too large"),
    ],
    ids=["refused-before-sending", "refused-by-the-gateway"],
)
def test_a_file_too_large_is_named_and_the_others_are_ingested(
    fake_gateway: GatewayProcess, tmp_path: Path, max_bytes: int, error: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    (tmp_path / f"{tag}-a.md").write_text("Small file a.")
    (tmp_path / f"{tag}-big.md").write_text("word " * (GATEWAY_LIMIT // 5 + 1000))
    (tmp_path / f"{tag}-z.md").write_text("Small file z.")
    result = gateway_ingest(
        str(tmp_path), "--url", fake_gateway.url, "--key", DEVELOPER_KEY,
        "--max-bytes", str(max_bytes),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert re.search(rf"{tag}-big\.md: {error}", result.stderr), result.stderr
    listed = sources_of(fake_gateway)
    assert {f"{tag}-a.md", f"{tag}-z.md"} <= set(listed)
    assert f"{tag}-big.md" not in listed


def test_options_and_the_environment(fake_gateway: GatewayProcess, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    files = [tmp_path / f"{tag}-{n}.md" for n in range(3)]
    for file in files:
        file.write_text(f"Document {file.name}.")
    result = gateway_ingest(
        *map(str, files), "--batch", "2", "--metadata", '{"origin": "cli"}',
        GATEWAY_URL=fake_gateway.url, GATEWAY_API_KEY=DEVELOPER_KEY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = sources_of(fake_gateway)
    assert all(listed[file.name]["metadata"] == {"origin": "cli"} for file in files)


def test_two_files_with_one_source_are_not_both_sent(
    fake_gateway: GatewayProcess, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    name = f"{tag}-readme.md"
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text(f"The {folder} readme.")
    result = gateway_ingest(
        str(tmp_path / "first"), str(tmp_path / "second"),
        "--url", fake_gateway.url, "--key", DEVELOPER_KEY, "--metadata", f'{{"case": "{tag}"}}',
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert re.search(rf"second/{name}: error: its source '{name}' is that of", result.stderr)
    with api_client(fake_gateway) as client:
        search = {"query": "readme", "k": 10, "filter": {"case": tag}}
        hits = client.post("/v1/rag/search", json=search).json()["data"]
    assert [h["text"] for h in hits] == ["The first readme."]


def test_standard_key_stops_at_the_first_403_with_one_message(
    fake_gateway: GatewayProcess,
) -> None:
    result = gateway_ingest(
        "examples/corpus", "--url", fake_gateway.url, "--key", STANDARD_KEY, "--batch", "1"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("403") == 1, result.stderr
    assert "the key may not write documents" in result.stderr
    assert "tier (standard) may not do this" in result.stderr
    totals = summary(result)
    assert (totals["done"], totals["files"], totals["failed"], totals["unsent"]) == (0, 7, 0, 7)


def test_no_gateway_listening_is_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = gateway_ingest("examples/corpus", "--url", url, "--key", DEVELOPER_KEY)
    assert result.returncode == 2, result.stderr
    assert f"cannot reach the gateway at {url}" in result.stderr
    assert "0 failed, 7 not sent" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("examples/corpus",), "no API key"),
        (("examples/corpus", "--key", "k", "--metadata", "{oops"), "--metadata is not JSON"),
        (("no/such/folder", "--key", "k"), "no/such/folder: no such file or folder"),
        (("examples/corpus", "--key", "k", "--prefix", "../up"), "--prefix '../up'"),
    ],
    ids=["no-key", "metadata-not-json", "missing-path", "prefix-dot-dot"],
)
def test_usage_errors_are_exit_2(args: tuple[str, ...], message: str) -> None:
    result = gateway_ingest(*args, "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def project(root: Path, name: str, readme: str) -> Path:
    folder = root / name
    (folder / "docs").mkdir(parents=True)
    (folder / "README.md").write_text(readme)
    (folder / "docs" / "guide.md").write_text(f"# Guide of {name}\n\nHow to use {name}.")
    (folder / "docs" / "manual.pdf").write_bytes(
        document_files.pdf([[f"The {name} manual, page one."], ["Page two of it."]])
    )
    return folder


def test_prefixes_keep_two_projects_apart_and_the_summary_tells_added_from_replaced(
    fake_gateway: GatewayProcess, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    first = project(tmp_path, "projA", "The readme of project A.")
    second = project(tmp_path, "projB", "The readme of project B.")
    key = ("--url", fake_gateway.url, "--key", DEVELOPER_KEY)
    a = gateway_ingest(str(first), "--prefix", f"{tag}/projA", *key)
    b = gateway_ingest(str(second), "--prefix", f"{tag}/projB/", *key)
    (first / "README.md").write_text("The readme of project A, second edition.")
    (first / "NEW.md").write_text("Added later.")
    dry = gateway_ingest(str(first), "--prefix", f"{tag}/projA", "--dry-run", *key)
    listed_before_rerun = sources_of(fake_gateway)
    again = gateway_ingest(str(first), "--prefix", f"{tag}/projA", *key)
    assert a.returncode == b.returncode == again.returncode == 0, a.stderr + b.stderr
    assert (summary(a)["added"], summary(a)["replaced"], summary(a)["files"]) == (3, 0, 3)
    assert (summary(b)["added"], summary(b)["replaced"]) == (3, 0)
    assert (summary(again)["added"], summary(again)["replaced"]) == (1, 3)
    expected = {
        f"{tag}/{p}/{f}" for p in ("projA", "projB") for f in ("README.md", "docs/guide.md",
                                                                "docs/manual.pdf")
    }  # fmt: skip
    listed = sources_of(fake_gateway)
    assert expected | {f"{tag}/projA/NEW.md"} <= set(listed)
    # The dry run said so, and sent nothing.
    assert dry.returncode == 0, dry.stderr
    assert f"would add {tag}/projA/NEW.md" in dry.stdout
    assert f"would replace {tag}/projA/README.md" in dry.stdout
    assert "dry run: 4 files, 1 would be added, 3 replaced; nothing sent" in dry.stdout
    assert f"{tag}/projA/NEW.md" not in listed_before_rerun
    pdf_id = listed[f"{tag}/projA/docs/manual.pdf"]["id"]
    with api_client(fake_gateway) as client:
        chunks = client.get(f"/v1/documents/{pdf_id}?include=chunks").json()["chunks"]
    assert chunks[0]["page"] == 1


def test_chunk_size_is_an_option(fake_gateway: GatewayProcess, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    (tmp_path / "long.md").write_text(" ".join(f"Sentence {n} about tea." for n in range(200)))
    key = ("--url", fake_gateway.url, "--key", DEVELOPER_KEY)
    default = gateway_ingest(str(tmp_path), "--prefix", f"{tag}/default", *key)
    small = gateway_ingest(
        str(tmp_path), "--prefix", f"{tag}/small", "--chunk-size", "40", "--chunk-overlap", "5",
        *key,
    )  # fmt: skip
    assert default.returncode == small.returncode == 0, small.stderr
    assert summary(small)["chunks"] > summary(default)["chunks"]
