"""`semifer label`: a local web page to label faces by keyboard, served from 127.0.0.1 only.

The page shows the faces in a grid; a number key gives the face under the cursor its class, Backspace takes the
last label back, arrow keys move. Every label is sent to this server at once and written by `LabelStore` before
the page hears back, so closing the page (or stopping the server) loses nothing; opening it again resumes at
the first face without a label.
"""

from __future__ import annotations

import errno
import io
import json
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from threading import Lock
from typing import Any

from PIL import Image

from ..data.faceset import read_image
from ..errors import SemiferError
from .store import LabelStore

HOST = "127.0.0.1"
THUMBNAIL = 160


def face_png(path: str) -> bytes:
    """A face as a small PNG, decoded by the same reader as training (any format it reads, 16-bit included)."""
    image = Image.fromarray(read_image(path))
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class LabelServer(ThreadingHTTPServer):
    """An HTTP server over one LabelStore; requests that change labels are taken one at a time."""

    daemon_threads = True

    def __init__(self, store: LabelStore, port: int = 8765):
        self.store = store
        self.write_lock = Lock()
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self.thumbnail = lru_cache(maxsize=4096)(face_png)
        try:
            super().__init__((HOST, port), LabelHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SemiferError(
                    f"port {port} on {HOST} is in use (another `semifer label`, or another program); pass "
                    "--port N for another port, or --port 0 for any free one"
                ) from None
            raise

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def state(self) -> dict[str, Any]:
        store = self.store
        return {
            "faces": store.faces,
            "classes": list(store.classes),
            "labels": store.labels(),
            "unreadable": store.unreadable,
            "out": str(store.out),
        }


class LabelHandler(BaseHTTPRequestHandler):
    server: LabelServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the terminal shows the URL and the final count, not one line per request."""

    def _local_host(self) -> bool:
        """Refuse pages of other sites that reach this port through a DNS name pointing at 127.0.0.1."""
        port = self.server.port
        return self.headers.get("Host", "") in {f"{HOST}:{port}", f"localhost:{port}"}

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._local_host():
            return self._json({"error": "unknown host"}, HTTPStatus.FORBIDDEN)
        if self.path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        if self.path == "/api/state":
            return self._json(self.server.state())
        if self.path.startswith("/face/"):
            faces = self.server.store.faces
            index = self.path.removeprefix("/face/")
            if not index.isdigit() or int(index) >= len(faces):
                return self._json({"error": "no such face"}, HTTPStatus.NOT_FOUND)
            path = str(self.server.store.faces_dir / faces[int(index)])
            return self._send(HTTPStatus.OK, self.server.thumbnail(path), "image/png")
        self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if not self._local_host() or self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._json({"error": "refused"}, HTTPStatus.FORBIDDEN)
        if self.path != "/api/label":
            return self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with self.server.write_lock:
                labels = self.server.store.set(str(request["face"]), request.get("label"))
        except (ValueError, KeyError, TypeError, SemiferError) as exc:
            return self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        self._json({"labels": labels})
