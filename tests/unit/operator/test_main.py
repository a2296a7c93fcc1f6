"""The operator's command line: kopf's, plus peering priority and scanning defaults."""

from __future__ import annotations

import os

import pytest

from kubehatch_operator.__main__ import kopf_args


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEHATCH_SCAN_CLUSTER", "unset")  # restored after each test


def test_defaults_to_all_namespaces_with_a_start_time_priority() -> None:
    argv = kopf_args([], now_ns=5_000_000)
    assert argv[:4] == ["kopf", "run", "-m", "kubehatch_operator.handlers"]
    assert "--all-namespaces" in argv
    assert "--priority=-5000" in argv
    assert os.environ["KUBEHATCH_SCAN_CLUSTER"] == "true"


def test_older_replicas_get_higher_priority() -> None:
    first = int(kopf_args([], now_ns=1_000_000)[-1].split("=")[1])
    later = int(kopf_args([], now_ns=2_000_000)[-1].split("=")[1])
    assert first > later


def test_standalone_or_explicit_priority_is_kept() -> None:
    assert not any(a.startswith("--priority") for a in kopf_args(["--standalone"]))
    assert [a for a in kopf_args(["--priority=7"]) if a.startswith("--priority")] == [
        "--priority=7"
    ]


def test_exact_namespaces_turn_cluster_scanning_off_but_globs_do_not() -> None:
    kopf_args(["--namespace", "team-a", "--namespace=team-b"])
    assert os.environ["KUBEHATCH_SCAN_CLUSTER"] == "false"
    kopf_args(["--namespace", "e2e-op-*"])
    assert os.environ["KUBEHATCH_SCAN_CLUSTER"] == "true"
