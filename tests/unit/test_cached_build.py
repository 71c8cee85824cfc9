"""The build cache (~/.cache/tokenwarden): one build per key, however many run at once."""
from __future__ import annotations

import threading

from tokenwarden.devcluster._build import _cached_build


def test_two_builds_of_one_key_at_once_build_it_once_and_whole(tmp_path):
    target = tmp_path / "tool" / "v1-key"
    builds = []
    second_waits = threading.Event()

    def build(staging):
        builds.append(staging)
        (staging / "first-half").write_text("built")
        second_waits.wait(timeout=5)  # the other build starts while this one is half done
        (staging / "second-half").write_text("built")

    def log(message):
        if message.startswith("waiting for another build"):
            second_waits.set()

    runs = [threading.Thread(target=_cached_build, args=(target, "v1", "the tool", build, log)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=30)

    assert len(builds) == 1
    assert sorted(p.name for p in target.iterdir()) == [".complete", "first-half", "second-half"]


def test_a_complete_build_is_not_built_again(tmp_path):
    target = tmp_path / "tool" / "v1-key"
    builds = []
    for _ in range(2):
        _cached_build(target, "v1", "the tool", lambda staging: builds.append(staging), lambda m: None)
    assert len(builds) == 1 and (target / ".complete").read_text() == "v1\n"
