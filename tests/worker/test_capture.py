"""Per-task capture of stdout/stderr and of log records, safe with concurrent tasks in one process."""

from __future__ import annotations

import logging
import sys
import threading

from servo.worker._capture import capture_output


def test_prints_inside_a_capture_go_to_its_buffers_only(capsys: object) -> None:
    with capture_output() as captured:
        print("inside")
        print("oops", file=sys.stderr)
    print("outside")
    assert captured.stdout() == "inside\n"
    assert captured.stderr() == "oops\n"


def test_concurrent_captures_each_see_only_their_own_text() -> None:
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def work(name: str) -> None:
        with capture_output() as captured:
            for i in range(50):
                print(f"{name}-{i}")
                if i % 10 == 0:
                    barrier.wait()
        results[name] = captured.stdout()

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] == "".join(f"a-{i}\n" for i in range(50))
    assert results["b"] == "".join(f"b-{i}\n" for i in range(50))


def test_log_records_of_the_task_thread_are_captured_into_stderr() -> None:
    log = logging.getLogger("servo.asset.test")
    log.setLevel(logging.INFO)
    with capture_output(loggers=("servo.asset",)) as captured:
        log.info("hello %s", "there")
    log.info("not captured")
    assert "hello there" in captured.stderr()
    assert "not captured" not in captured.stderr()
