"""HTTP plumbing for the sim API server: a threading HTTP/1.1 server on 127.0.0.1.

Reads bounded request bodies (413 above ``MAX_BODY_BYTES``, 400 on a broken body), hands
them to ``Api.handle`` and writes the answer with a Content-Length, or chunked for watch
streams. Socket timeouts make sure no connection hangs a thread forever. With a
``wait_durable`` callback (``--state``'s write-ahead log), the answer to any request that may
have written is sent only once every change up to the store's resourceVersion at that point
is on disk: a client never hears of a change that a crash could still take back. With an
``ssl_context`` (``sim up --auth``) it serves HTTPS, each handshake in its request's thread.
"""
from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import urlsplit

from eafix_capacity.sim.api import MAX_BODY_BYTES, Api, Response, error_response
from eafix_capacity.sim.apierror import ApiError

_READ_TIMEOUT = 30.0
_DISCARD_LIMIT = 64 * 1024 * 1024
_STOP_WAIT = 5.0
_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


POLL_SECONDS = 0.05

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eafix-sim"
    sys_version = ""
    timeout = _READ_TIMEOUT
    disable_nagle_algorithm = True
    server: "_Server"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, unknown method) still gets a Status body."""
        reason = {400: "BadRequest", 405: "MethodNotAllowed", 414: "RequestURITooLong",
                  431: "RequestHeaderFieldsTooLarge", 501: "MethodNotAllowed"}.get(code, "BadRequest")
        status = 405 if code == 501 else code
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        self._send(error_response(ApiError(status, reason, message or "bad request")))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid Content-Length {length_text!r}") from None
        if length < 0:
            raise ApiError(400, "BadRequest", f"invalid Content-Length {length_text!r}")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._discard(min(length, _DISCARD_LIMIT))
            raise ApiError(413, "RequestEntityTooLarge",
                           f"Request entity too large: limit is {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def _discard(self, length: int) -> None:
        """Read and drop a refused body so the client can read the answer instead of a broken pipe."""
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(100).strip()
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "BadRequest", "malformed chunked request body") from None
            if size == 0:
                self.rfile.readline(100)
                break
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                raise ApiError(413, "RequestEntityTooLarge",
                               f"Request entity too large: limit is {MAX_BODY_BYTES} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(100)
        return b"".join(chunks)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ApiError as e:
            self._send(error_response(e))
            return
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        for name in {k.lower() for k in self.headers if k.lower().startswith("impersonate-")}:
            # repeatable (Impersonate-Group, Impersonate-Extra-*): every value, one per line
            headers[name] = "\n".join(v for k, v in self.headers.items() if k.lower() == name)
        with self.server.in_flight():
            try:
                response = self.server.api.handle(self.command, url.path, url.query, headers, body)
            except Exception as e:  # the sim must answer, never drop the connection
                response = error_response(ApiError(500, "InternalError", f"Internal error occurred: {e!r}"))
            response = self._once_durable(response)
        self._send(response)

    def _once_durable(self, response: Response) -> Response:
        """``response`` once what it reports is on disk (the store's resourceVersion now covers
        this request's own changes, and any other change it could have read); a 500 instead if
        it cannot be saved. A refused write waits too: its answer may rest on another's change."""
        wait = self.server.wait_durable
        if wait is None or self.command in _READ_ONLY_METHODS:
            return response
        try:
            wait(self.server.api.store.resource_version)
        except Exception as e:
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {e}; the change may "
                                                                 "be lost when the sim stops"))
        return response

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in response.headers:
            self.send_header(name, value)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in response.stream:
                if not chunk:  # the stream is idle: end it if the client has closed the connection
                    if self._client_gone():
                        self.close_connection = True
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            close = getattr(response.stream, "close", None)
            if close is not None:
                close()

    def _client_gone(self) -> bool:
        """True once the peer has closed its end (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and isinstance(self.connection, ssl.SSLSocket):
                return self._tls_closed(self.connection)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True

    @staticmethod
    def _tls_closed(conn: ssl.SSLSocket) -> bool:
        """TLS cannot peek: read (a watch client sends nothing) without blocking."""
        timeout = conn.gettimeout()
        conn.settimeout(0)
        try:
            return not conn.recv(1)
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            conn.settimeout(timeout)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, TimeoutError, OSError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Api, wait_durable: Callable[[int], None] | None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.wait_durable = wait_durable
        self.ssl_context = ssl_context
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:  # the handshake runs in the request's thread, not the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(_READ_TIMEOUT)
                request.do_handshake()
            except OSError:  # ssl.SSLError included: a client that does not speak TLS, or gives up
                return
        super().finish_request(request, client_address)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts a request while ``Api.handle`` runs (a watch only until its stream is returned)."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled, so a change acknowledged before stop is saved."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


class ApiServer:
    """Serves an ``Api`` on 127.0.0.1:port (0 = ephemeral) in a background thread."""

    def __init__(self, api: Api, *, port: int = 0, host: str = "127.0.0.1",
                 wait_durable: Callable[[int], None] | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.api = api
        self._server = _Server((host, port), api, wait_durable, ssl_context)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._server.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        # shutdown() returns at the loop's next poll: 50 ms keeps stop() short (a test suite
        # stops hundreds of sims) for 20 idle wake-ups a second
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        name="eafix-sim-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.api.stopping = True
        if self._thread is not None:  # shutdown() waits for serve_forever, forever if it never ran
            self._server.shutdown()
        self._server.server_close()
        self._server.wait_idle(_STOP_WAIT)
        if self._thread is not None:
            self._thread.join(timeout=5)
