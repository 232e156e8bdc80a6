"""The upload check is linear in the config's size and bounded in time.

A 2.8 MB ``.keras`` (a 2 MB key over a 400,000-item list) kept the old checker busy 57 s: it
built a path string per node. Every worst case here must be refused with a clear message or
pass, in under a second, checked the way the server checks an upload (archive, then config).
"""

from __future__ import annotations

import time
from pathlib import Path

import config_bombs as bombs
import pytest

from models.errors import ModelLoadError, UnsafeModelError
from models.safety import Limits, check_archive, check_config

BOUND_S = 1.0  # the issue's bound for check_archive + check_config on any file under the caps

# What each case must end in: None (it passes the check) or a phrase of its refusal.
OUTCOME: dict[str, str | None] = {
    "2 MB key over a 400,000-item list": None,
    "400,000-item list 90 levels deep": None,
    "900 levels of nesting": "nested more than 100 levels deep",
    "200,000 levels of nesting": "nested too deeply",
    "huge flat dict": None,
    "many small layer nodes": None,
    "100,000-digit number": "not valid JSON",
}


def _check(path: Path) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        check_config(check_archive(path), path.name)
        message = None
    except ModelLoadError as exc:
        message = str(exc)
    return time.perf_counter() - started, message


@pytest.mark.parametrize("case", list(bombs.BOMBS))
def test_worst_case_configs_are_checked_in_bounded_time(case: str, tmp_path: Path) -> None:
    text = bombs.BOMBS[case]()
    assert len(text) <= Limits().max_config_bytes, "the case must fit under the config cap to test the walk"
    path = bombs.bomb_file(tmp_path, "bomb", text)
    elapsed, message = _check(path)
    assert elapsed < BOUND_S, f"{case}: {elapsed:.2f} s"
    expected = OUTCOME[case]
    if message is not None and "took more than" in message:  # a very slow machine: the time budget stepped in
        assert "CNN_LENS_MAX_CHECK_SECONDS" in message and "bomb.keras" in message
        return
    if expected is None:
        assert message is None, message
    else:
        assert message is not None and expected in message and message.startswith("bomb.keras"), message
        assert len(message) < 600, "the message must not echo the hostile text"


def test_the_issue_case_is_the_size_the_issue_reported(tmp_path: Path) -> None:
    path = bombs.bomb_file(tmp_path, "bomb", bombs.long_key_over_long_list())
    assert 2_700_000 < path.stat().st_size < 2_900_000


def test_a_config_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    path = bombs.bomb_file(tmp_path, "big", bombs.huge_flat_dict(megabytes=5.5))
    started = time.perf_counter()
    with pytest.raises(
        UnsafeModelError, match=r"big.keras: refused, its config.json is 5.\d MB.*CNN_LENS_MAX_CONFIG_MB"
    ):
        check_archive(path)
    assert time.perf_counter() - started < 0.1


def test_node_cap_is_checked_as_it_goes() -> None:
    config = {"class_name": "Sequential", "config": {"layers": [0] * 1000}}
    check_config(config, "ok.keras", Limits(max_config_nodes=2000))
    with pytest.raises(UnsafeModelError, match=r"wide.keras: refused, its config.json has more than 500 entries"):
        check_config(config, "wide.keras", Limits(max_config_nodes=500))


def test_depth_cap_names_the_place() -> None:
    config: dict = {"class_name": "Sequential", "config": {"layers": []}}
    inner = config["config"]["layers"]
    for _ in range(20):
        inner.append([])
        inner = inner[0]
    check_config(config, "ok.keras", Limits(max_config_depth=30))
    with pytest.raises(
        UnsafeModelError, match=r"deep.keras: .*more than 10 levels deep.*config\.config\.layers\[0\]\[0\]"
    ):
        check_config(config, "deep.keras", Limits(max_config_depth=10))


def test_time_budget_refuses_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"class_name": "Sequential", "config": {"layers": [{"a": [1, 2, 3]}] * 50_000}}
    check_config(config, "ok.keras")
    monkeypatch.setenv("CNN_LENS_MAX_CHECK_SECONDS", "0.000001")
    with pytest.raises(UnsafeModelError, match=r"slow.keras: refused, checking its config.json took more than"):
        check_config(config, "slow.keras")


def test_a_long_key_in_an_error_is_cut_short() -> None:
    key = "k" * 2_000_000
    config = {"class_name": "Sequential", "config": {key: [{"module": "os", "class_name": "function"}]}}
    with pytest.raises(UnsafeModelError) as caught:
        check_config(config, "long.keras")
    message = str(caught.value)
    assert "module 'os'" in message and "config.config.kkkk" in message and len(message) < 600, message[:700]
