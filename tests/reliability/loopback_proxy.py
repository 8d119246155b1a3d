"""A TCP proxy on 127.0.0.1 in front of a Redis the test owns: it cuts connections.

- `LoopbackProxy.lose_reply_to(marker)` arms it: the next request containing
  ``marker`` reaches Redis and runs there, but its reply never comes back: the proxy
  cuts that client's connection instead, as a network cut or a Redis restart does
  between a command and its reply. With ``then_refuse``, Redis stays unreachable
  after that (every connection refused) until `refuse(False)`.
- `LoopbackProxy.cut()` cuts every open connection at once, wherever its commands are
  (a network blip); clients connect again through the proxy.

- ``latency_s`` delays every reply (a slow network or a busy Redis).

While Redis is down, a connection the proxy accepts is closed at once.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

_CHUNK = 65536


class LoopbackProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1",
                 latency_s: float = 0.0) -> None:
        self.upstream = (host, upstream_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._then_refuse = False
        self._refusing = False
        self.lost = threading.Event()  # a reply was lost as armed
        self._open: set[socket.socket] = set()
        self.cuts = 0  # connections cut by `cut`
        self.latency_s = latency_s
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def url(self, db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{self.upstream[0]}:{self.port}/{db}"

    def lose_reply_to(self, marker: bytes, *, then_refuse: bool = False) -> None:
        with self._lock:
            self._marker = marker
            self._then_refuse = then_refuse
            self.lost.clear()

    def refuse(self, refusing: bool = True) -> None:
        """Refuse (close at once) every new connection, or accept them again."""
        self._refusing = refusing

    def cut(self) -> int:
        """Cut every open connection (both ends); returns how many were open."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _shut(sock)
        self.cuts += len(sockets) // 2
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        _shut(self.listener)
        self.listener.close()
        self.cut()

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
            if self._refusing:
                _shut(client)
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=1.0)
                upstream.settimeout(None)
            except OSError:  # Redis is down: the client sees its connection refused
                _shut(client)
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
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
        self._end(client, upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket,
                 cut: threading.Event) -> None:
        try:
            while data := upstream.recv(_CHUNK):
                if cut.is_set():  # the command ran; its reply goes nowhere
                    self._refusing = self._refusing or self._then_refuse
                    self.lost.set()
                    break
                if self.latency_s:
                    time.sleep(self.latency_s)
                client.sendall(data)
        except OSError:
            pass
        self._end(client, upstream)

    def _end(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open -= set(sockets)
        for sock in sockets:
            _shut(sock)
            sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
