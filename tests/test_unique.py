"""Request ids and one-off outbox keys: unique across threads and processes, with no read of the
kernel's random source per token (that read lets go of the interpreter lock on a hot thread)."""

from __future__ import annotations

import os
import threading

import pytest

from storage import logcontext, unique


def test_tokens_from_many_threads_never_repeat() -> None:
    seen: list[list[str]] = [[] for _ in range(8)]

    def draw(out: list[str]) -> None:
        out.extend(unique.token() for _ in range(5_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [tok for out in seen for tok in out]
    assert len(set(every)) == len(every) == 40_000
    assert all(tok.isalnum() and 17 <= len(tok) <= 32 for tok in every)


def test_a_forked_child_draws_from_a_prefix_of_its_own() -> None:
    read, write = os.pipe()
    before = unique.token()
    pid = os.fork()
    if pid == 0:  # the child: send one token and leave at once
        os.write(write, unique.token().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    after = unique.token()
    assert child[:16] != before[:16] == after[:16]


def test_a_token_reads_no_random_source(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_n: int) -> bytes:
        raise AssertionError("a token read the random source")

    monkeypatch.setattr(os, "urandom", refuse)
    first, second = unique.token(), logcontext.accept_request_id(None)
    assert first != second


def test_a_callers_plain_request_id_is_kept_and_anything_else_replaced() -> None:
    assert logcontext.accept_request_id("req-from-the-qa-platform") == "req-from-the-qa-platform"
    made = logcontext.accept_request_id("has spaces and <tags>")
    assert made != "has spaces and <tags>" and logcontext.accept_request_id(made) == made
