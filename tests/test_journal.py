"""The response journal: nothing complete is lost, a torn last line is cut off."""

from __future__ import annotations

import pytest

from data_gen.teachers.journal import Journal, request_key


def test_entries_survive_reopening(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    journal = Journal(path)
    journal.append({"key": "a", "choices": [{"text": "ans = 1"}]})
    journal.append({"key": "b", "choices": []})
    journal.close()
    reopened = Journal(path)
    assert "a" in reopened and "b" in reopened and reopened.get("a")["choices"][0]["text"] == "ans = 1"


def test_a_torn_last_line_is_cut_and_appending_continues(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"key": "a", "choices": []}\n{"key": "b", "cho')
    journal = Journal(str(path))
    assert journal.dropped_torn_line and "a" in journal and "b" not in journal
    journal.append({"key": "c", "choices": []})
    journal.close()
    assert path.read_text().splitlines() == ['{"key": "a", "choices": []}', '{"key": "c", "choices": []}']


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match="corrupt line"):
        Journal(str(path))


def test_keys_depend_on_every_field():
    base = {"model": "m", "messages": [{"role": "user", "content": "q"}], "params": {"n": 1}, "first_sample": 0}
    assert request_key(**base) == request_key(**dict(reversed(list(base.items()))))
    for field, value in [("model", "m2"), ("params", {"n": 2}), ("first_sample", 1)]:
        assert request_key(**{**base, field: value}) != request_key(**base)
