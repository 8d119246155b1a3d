"""FeedbackStore: human-feedback requests and answers of a deployment, in Redis.

Documents are stored as the JSON text `graflow_dist.hitl` writes; this module knows only
ids, sessions, times and whether a request still waits. An answer is stored and
announced (an ``answer`` event on the coordinator's stream, which wakes the parked task)
in one transaction, so an answer can never be stored without the task hearing of it.
"""

from __future__ import annotations

import time

import redis
from redis.exceptions import WatchError

from graflow_dist.broker.events import EventLog
from graflow_dist.broker.keys import Keyspace
from graflow_dist.wire.messages import ANSWER, Event

F_REQUEST, F_RESPONSE, F_SESSION, F_CREATED = "request", "response", "session", "created_at"


class FeedbackStore:
    """Requests and responses by feedback id.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace
        self.events = EventLog(client, keyspace)

    def put_request(self, feedback_id: str, session_id: str, document: str, *,
                    created_at: float, pending: bool, wake: bool = False) -> None:
        """Create or replace a request; ``pending`` while it can be answered. With
        ``wake`` the task parked on it runs again (e.g. the request was cancelled)."""
        ks = self.keyspace
        pipe = self.client.pipeline(transaction=True)
        if wake:
            self.events.publish(Event(ANSWER, session_id, wake_key=feedback_id), pipe)
        pipe.hset(ks.feedback(feedback_id), mapping={
            F_REQUEST: document, F_SESSION: session_id, F_CREATED: repr(created_at)})
        pipe.zadd(ks.feedback_index, {feedback_id: created_at})
        if pending:
            pipe.zadd(ks.feedback_pending, {feedback_id: created_at})
        else:
            pipe.zrem(ks.feedback_pending, feedback_id)
        pipe.sadd(ks.run(session_id).feedback, feedback_id)
        pipe.execute()

    def request(self, feedback_id: str) -> str | None:
        raw = self.client.hget(self.keyspace.feedback(feedback_id), F_REQUEST)
        return None if raw is None else raw.decode(errors="replace")

    def response(self, feedback_id: str) -> str | None:
        raw = self.client.hget(self.keyspace.feedback(feedback_id), F_RESPONSE)
        return None if raw is None else raw.decode(errors="replace")

    def session_of(self, feedback_id: str) -> str | None:
        raw = self.client.hget(self.keyspace.feedback(feedback_id), F_SESSION)
        return None if raw is None else raw.decode(errors="replace")

    def answer(self, feedback_id: str, response: str, request: str | None = None) -> bool:
        """Store ``response`` (and the request's updated document), close the request
        and wake its task, atomically. False if there is no such request."""
        key = self.keyspace.feedback(feedback_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    session = pipe.hget(key, F_SESSION)
                    if session is None:
                        return False
                    pipe.multi()
                    pipe.hset(key, F_RESPONSE, response)
                    if request is not None:
                        pipe.hset(key, F_REQUEST, request)
                    pipe.zrem(self.keyspace.feedback_pending, feedback_id)
                    self.events.publish(Event(ANSWER, session.decode(errors="replace"),
                                              wake_key=feedback_id), pipe)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def ids(self, session_id: str | None = None, *, pending_only: bool = False,
            limit: int = 100) -> list[str]:
        """Feedback ids, newest first (of one session if given)."""
        ks = self.keyspace
        if session_id is not None:
            members = [m.decode(errors="replace")
                       for m in self.client.smembers(ks.run(session_id).feedback)]
            if not members:
                return []
            pipe = self.client.pipeline(transaction=False)
            for fid in members:
                pipe.zscore(ks.feedback_pending if pending_only else ks.feedback_index, fid)
            scored = [(s, fid) for fid, s in zip(members, pipe.execute(), strict=True)
                      if s is not None]
            return [fid for _s, fid in sorted(scored, reverse=True)][:limit]
        index = ks.feedback_pending if pending_only else ks.feedback_index
        return [m.decode(errors="replace")
                for m in self.client.zrevrange(index, 0, max(0, limit - 1))]

    def documents(self, feedback_ids: list[str]) -> list[tuple[str, str, str | None]]:
        """``(id, request, response or None)`` of each id that still exists, in order."""
        pipe = self.client.pipeline(transaction=False)
        for fid in feedback_ids:
            pipe.hmget(self.keyspace.feedback(fid), [F_REQUEST, F_RESPONSE])
        out = []
        for fid, (request, response) in zip(feedback_ids, pipe.execute(), strict=True):
            if request is not None:
                out.append((fid, request.decode(errors="replace"),
                            None if response is None else response.decode(errors="replace")))
        return out

    def trim(self, older_than_s: float) -> int:
        """Drop index entries older than ``older_than_s`` seconds."""
        cutoff = time.time() - older_than_s
        return int(self.client.zremrangebyscore(self.keyspace.feedback_index, "-inf", cutoff))
