"""Both feedback stores keep the protocol: the same documents back, newest first,
filters by session, whole documents only, clear errors for bad files and ids."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from graflow_dist.errors import FeedbackError, FeedbackValidationError
from graflow_dist.hitl.backend import (
    FeedbackBackend,
    FilesystemFeedbackBackend,
    MemoryFeedbackBackend,
)
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse, FeedbackType


def make_request(feedback_id: str, session_id: str = "s1", created_at: str = "",
                 status: str = "pending") -> FeedbackRequest:
    req = FeedbackRequest(feedback_id=feedback_id, task_id="t", session_id=session_id,
                          feedback_type=FeedbackType.TEXT, prompt="say", status=status)
    if created_at:
        req.created_at = created_at
    return req


@pytest.fixture(params=["memory", "filesystem"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FeedbackBackend:
    if request.param == "memory":
        return MemoryFeedbackBackend()
    return FilesystemFeedbackBackend(tmp_path / "store")


def test_documents_come_back_equal_and_detached(store: FeedbackBackend) -> None:
    req = make_request("a1")
    store.store_request(req)
    got = store.get_request("a1")
    assert got == req
    assert got is not req
    got.metadata["changed"] = True  # a copy: the store is unchanged
    assert store.get_request("a1") == req
    assert store.get_response("a1") is None
    answer = FeedbackResponse("a1", FeedbackType.TEXT, text="hi")
    store.store_response(answer)
    assert store.get_response("a1") == answer
    assert store.get_request("missing") is None


def test_listing_is_newest_first_by_session_with_a_limit(store: FeedbackBackend) -> None:
    for i, session in enumerate(["s1", "s2", "s1", "s1"]):
        store.store_request(make_request(f"r{i}", session, f"2026-01-0{i + 1}T00:00:00+00:00"))
    store.store_request(make_request("done", "s1", "2026-02-01T00:00:00+00:00", "completed"))
    assert [r.feedback_id for r in store.list_requests()] == ["done", "r3", "r2", "r1", "r0"]
    assert [r.feedback_id for r in store.list_requests("s1", n_recent=2)] == ["done", "r3"]
    assert [r.feedback_id for r in store.list_pending_requests("s1")] == ["r3", "r2", "r0"]
    assert [r.feedback_id for r in store.list_pending_requests("s2")] == ["r1"]


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".x", "x" * 129])
def test_ids_that_are_not_safe_names_are_refused(store: FeedbackBackend, bad_id: str) -> None:
    with pytest.raises(FeedbackValidationError, match="invalid feedback id"):
        make_request(bad_id)
    if isinstance(store, FilesystemFeedbackBackend):  # ids from outside, e.g. a URL
        with pytest.raises(FeedbackValidationError, match="invalid feedback id"):
            store.get_request(bad_id)


def test_filesystem_writes_whole_documents_only(tmp_path: Path) -> None:
    """Readers racing a writer see the old or the new document, never a part."""
    store = FilesystemFeedbackBackend(tmp_path / "store")
    big = make_request("race")
    big.metadata = {"blob": "x" * 200_000}
    store.store_request(big)
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                assert store.get_request("race") is not None
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    for i in range(40):
        big.metadata = {"blob": str(i) * 200_000}
        store.store_request(big)
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in (tmp_path / "store" / "requests").iterdir()) == ["race.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"feedback_id": "r1"}', "feedback request: "),
    ],
)
def test_a_corrupt_file_is_named_in_the_error(tmp_path: Path, content: bytes,
                                              message: str) -> None:
    store = FilesystemFeedbackBackend(tmp_path / "store")
    path = tmp_path / "store" / "requests" / "r1.json"
    path.write_bytes(content)
    with pytest.raises(FeedbackError) as raised:
        store.get_request("r1")
    assert str(path) in str(raised.value)
    assert message in str(raised.value)
    # Listing skips the bad file and still shows the good ones.
    store.store_request(make_request("r2"))
    assert [r.feedback_id for r in store.list_requests()] == ["r2"]


def test_a_file_holding_another_id_is_refused(tmp_path: Path) -> None:
    store = FilesystemFeedbackBackend(tmp_path / "store")
    store.store_request(make_request("r1"))
    (tmp_path / "store" / "requests" / "r1.json").rename(
        tmp_path / "store" / "requests" / "r9.json")
    with pytest.raises(FeedbackError, match="holds feedback id 'r1'"):
        store.get_request("r9")


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FeedbackError, match=f"feedback directory {blocker}: cannot create"):
        FilesystemFeedbackBackend(blocker)


def test_memory_store_wakes_a_listener_when_answered() -> None:
    store = MemoryFeedbackBackend()
    woken = threading.Event()
    assert store.start_listener("a1", woken) is None
    assert not woken.is_set()
    store.store_response(FeedbackResponse("a1", FeedbackType.TEXT, text="now"))
    assert woken.is_set()
    late = threading.Event()
    store.start_listener("a1", late)  # answered already: set at once
    assert late.is_set()
