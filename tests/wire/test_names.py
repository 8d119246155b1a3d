"""Names checked where they enter: session ids, prefixes, queues, workflow names and task
ids; the client and the keyspace refuse bad ones with one clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graflow_dist.broker.keys import Keyspace
from graflow_dist.errors import InvalidNameError
from graflow_dist.names import (
    MAX_SESSION_ID_LEN,
    check_prefix,
    check_session_id,
    check_task_id,
    check_workflow_name,
    is_session_id,
)

HOSTILE_IDS = ["*", "a*", "[ab]", "?", "..", "../../..", "/etc", "a/b", "a:b", "", " ",
               "-x", ".hidden", "x\n", "x\x00", "\udcff", "é", "x" * (MAX_SESSION_ID_LEN + 1)]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_session_ids_and_prefixes_are_refused(value: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid session id"):
        check_session_id(value)
    with pytest.raises(InvalidNameError, match="invalid deployment prefix"):
        Keyspace(value)


@pytest.mark.parametrize("value", ["a1b2c3", "0" * 32, "run-2026.11_30", "X"])
def test_plain_identifiers_pass(value: str) -> None:
    assert check_session_id(value) == value
    assert check_prefix(value) == value


def test_task_ids_and_workflow_names_are_printable_text() -> None:
    assert check_task_id("load data (step 2)") == "load data (step 2)"
    assert check_workflow_name("") == ""  # a context without a workflow name
    for bad in ("", "a\nb", "tab\there", "x" * 201, "\udcff"):
        with pytest.raises(InvalidNameError, match="invalid task id"):
            check_task_id(bad)
    with pytest.raises(InvalidNameError, match="invalid workflow name"):
        check_workflow_name("evil\x1b[31m")


@given(st.text(max_size=200))
def test_a_valid_session_id_is_never_a_glob_a_path_or_a_key_separator(value: str) -> None:
    if is_session_id(value):
        assert not set(value) & set("*?[]\\/:") and not value.startswith((".", "-"))
        assert value.encode("ascii")  # plain ASCII: no surrogates, nothing to escape
    else:
        with pytest.raises(InvalidNameError):
            check_session_id(value)
