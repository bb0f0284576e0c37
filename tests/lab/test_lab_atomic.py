"""Atomic writes: the target holds the old content or the new, never a mixture."""
from __future__ import annotations

import os

import pytest

from closedloop.lab.atomic import atomic_path, atomic_write, atomic_write_text


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_text_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "state.json"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert leftovers(target.parent) == []


def test_atomic_write_writes_to_a_sibling_temp_then_renames(tmp_path):
    target = tmp_path / "f.bin"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing visible at the target while writing
        tmp.write_bytes(b"payload")

    atomic_write(target, write)
    assert target.read_bytes() == b"payload"
    assert not seen[0].exists()


def test_failing_write_keeps_old_content_and_removes_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("precious")

    def bad(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # even a non-Exception must not leave debris

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, bad)
    assert target.read_text() == "precious"
    assert leftovers(tmp_path) == []


def test_failing_first_write_leaves_no_target(tmp_path):
    target = tmp_path / "new.txt"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            raise ValueError("stop")
    assert not target.exists()
    assert os.listdir(tmp_path) == []
