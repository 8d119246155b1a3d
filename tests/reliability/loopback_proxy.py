"""A TCP proxy on 127.0.0.1 in front of a Redis the test owns, which can lose a reply.

`LoopbackProxy.lose_reply_to(marker)` arms it: the next request containing ``marker``
reaches Redis and runs there, but its reply never comes back: the proxy cuts that
client's connection instead, as a network cut or a Redis restart does between a
command and its reply.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

_CHUNK = 65536


class LoopbackProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.lost = threading.Event()  # a reply was lost as armed
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://{self.upstream[0]}:{self.port}/{db}"

    def lose_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker
            self.lost.clear()

    def close(self) -> None:
        self._closed = True
        for sock in [self.listener, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> LoopbackProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._sockets += [client, upstream]
            cut = threading.Event()  # the next reply on this connection is lost
            threading.Thread(target=self._requests, args=(client, upstream, cut),
                             daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, cut),
                             daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  cut: threading.Event) -> None:
        try:
            while data := client.recv(_CHUNK):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        cut.set()
                upstream.sendall(data)
        except OSError:
            pass
        _shut(upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket,
                 cut: threading.Event) -> None:
        try:
            while data := upstream.recv(_CHUNK):
                if cut.is_set():  # the command ran; its reply goes nowhere
                    self.lost.set()
                    break
                client.sendall(data)
        except OSError:
            pass
        _shut(client)
        _shut(upstream)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
