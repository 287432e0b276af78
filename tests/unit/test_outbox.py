"""The launcher's output, written by a thread of its own (outbox.py): in order, bounded, never fatal."""

from __future__ import annotations

import fcntl
import io
import os
import sys
import threading

import pytest

from mpilauncher import outbox
from mpilauncher.outbox import Outbox, TextOutbox, drain_all, standard_error

F_SETPIPE_SZ = 1031


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb", closefd=False) as reader:
        return reader.read()


def drained_by_a_reader(box: Outbox, read_end: int, write_end: int) -> bytes:
    """Read until ``box`` has written all it holds, then the rest (what a late reader sees)."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(read_all(read_end)))
    reader.start()
    assert box.drain(10)
    os.close(write_end)
    reader.join(10)
    return got[0]


def test_what_is_put_is_written_in_order_without_waiting_for_the_reader(pipe):
    read_end, write_end = pipe
    box = Outbox()
    for n in range(1000):  # ~8 KiB: twice what the pipe holds; nothing reads it yet
        box.put(write_end, f"line {n}\n".encode())
    assert not box.drain(0.2), "the reader has not read: the writes wait, not the caller"
    assert drained_by_a_reader(box, read_end, write_end) == b"".join(f"line {n}\n".encode() for n in range(1000))


def test_a_backlog_over_the_limit_is_dropped_and_said_before_what_comes_next(pipe, monkeypatch):
    read_end, write_end = pipe
    monkeypatch.setattr(outbox, "BACKLOG", 10_000)
    box = Outbox()
    box.put(write_end, b"a" * 9_000)
    box.put(write_end, b"b" * 2_000)  # 11,000 held: dropped
    box.put(write_end, b"c\n")  # fits: said after the note
    note = b"[mpilauncher: 2000 bytes of output dropped: nothing read them]\n"
    assert drained_by_a_reader(box, read_end, write_end) == b"a" * 9_000 + note + b"c\n"


def test_a_failed_write_is_said_once_and_the_rest_for_that_descriptor_dropped(pipe):
    read_end, write_end = pipe
    os.close(read_end)  # (EPIPE: Python ignores SIGPIPE)
    failures: list[OSError] = []
    box = Outbox()
    box.on_error[write_end] = failures.append
    for _ in range(3):
        box.put(write_end, b"x\n")
    assert box.drain(10)
    assert [type(err) for err in failures] == [BrokenPipeError]


def test_a_text_stream_without_a_descriptor_is_written_as_it_comes():
    stream = io.StringIO()
    text = TextOutbox(stream, lambda err: None)
    text.write("at once\n")
    assert stream.getvalue() == "at once\n"


def test_stdout_and_stderr_on_one_file_share_one_outbox_and_keep_their_order(tmp_path):
    """``2>&1`` into a log: a message between two trace lines stays between them."""
    with open(tmp_path / "log", "w") as log_file:
        other = os.dup(log_file.fileno())
        try:
            with os.fdopen(other, "w", closefd=False) as second:
                first_text, second_text = TextOutbox(log_file, print), TextOutbox(second, print)
                for n in range(200):
                    (first_text if n % 2 else second_text).write(f"{n}\n")
                assert drain_all(10)
        finally:
            os.close(other)
    assert (tmp_path / "log").read_text() == "".join(f"{n}\n" for n in range(200))


def test_messages_go_through_the_outbox_only_while_a_run_is_under_way(monkeypatch):
    """Outside a run a message is written at once, in its order with what the script itself writes
    (a traceback after an error line); inside, by the outbox's thread."""
    monkeypatch.setattr(outbox, "_in_run", False)
    assert standard_error() is sys.stderr
    monkeypatch.setattr(outbox, "_in_run", True)
    assert isinstance(standard_error(), TextOutbox)
