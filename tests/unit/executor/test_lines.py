"""LineSplitter: bytes to log lines, redraws collapsed, long lines cut."""

from __future__ import annotations

from training_agent.executor.lines import LineSplitter, collapse_redraws


def test_lines_complete_only_at_newline() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.feed(b"o\nthree") == ["two"]
    assert splitter.finish() == ["three"]
    assert splitter.finish() == []


def test_utf8_split_across_chunks_and_invalid_bytes() -> None:
    splitter = LineSplitter()
    euro = "€".encode()
    assert splitter.feed(b"price " + euro[:1]) == []
    assert splitter.feed(euro[1:] + b" \xff\n") == ["price € \ufffd"]


def test_carriage_return_keeps_the_last_redraw() -> None:
    assert collapse_redraws("10%\r50%\r100%") == "100%"
    assert collapse_redraws("done\r\n".rstrip("\n")) == "done"
    assert collapse_redraws("50%\r     \r") == "50%"
    assert collapse_redraws("\r") == ""
    assert collapse_redraws("plain") == "plain"


def test_long_line_is_cut_into_chunks() -> None:
    splitter = LineSplitter(max_line_chars=4)
    assert splitter.feed(b"abcdefghij") == ["abcd", "efgh"]
    assert splitter.feed(b"\n") == ["ij"]
    assert splitter.feed(b"0123456789\n") == ["0123", "4567", "89"]
    assert splitter.feed(b"\n") == [""]


def test_endless_redraws_keep_memory_bounded() -> None:
    splitter = LineSplitter(max_line_chars=100)
    lines: list[str] = []
    for percent in range(1000):
        lines += splitter.feed(f"\r{percent:3d}%".encode())
    lines += splitter.feed(b"\n")
    assert lines == ["999%"]
