"""The attempt's output stream: whole lines while running, everything at the end, the tail when too much."""

from __future__ import annotations

from servo.worker._logstream import OutputStream


def test_a_running_attempt_sends_whole_lines_and_the_rest_at_the_end() -> None:
    stream = OutputStream()
    stream.write("one\ntw")
    assert stream.take(100, whole_lines=True) == "one\n"
    assert stream.take(100, whole_lines=True) == ""  # "tw" is a line still being written
    stream.write("o")
    assert stream.take(100, whole_lines=False) == "two"
    assert stream.pending() == 0


def test_a_line_longer_than_a_chunk_is_sent_in_pieces() -> None:
    stream = OutputStream()
    stream.write("x" * 10)
    assert stream.take(4, whole_lines=True) == "xxxx"
    assert stream.pending() == 6


def test_too_much_output_keeps_the_tail_and_says_what_was_dropped() -> None:
    stream = OutputStream(limit=10)
    stream.write("a" * 15)
    stream.write("b" * 10)
    assert stream.take(100, whole_lines=False) == "[15 characters of output dropped]\n" + "b" * 10
    stream.write("abc")
    stream.keep_tail(1)
    assert stream.take(100, whole_lines=False) == "[2 characters of output dropped]\nc"
