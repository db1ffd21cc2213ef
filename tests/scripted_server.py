"""A loopback HTTP server that answers exactly as a test scripts it, for answers the fake cannot give.

tests/fake_omneo.py plays a well-behaved Omneo with faults; this plays anything else that
can sit at a --base-url: a proxy page, a redirect, a lookup that proves nothing, a header
echoed back. 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Scripted:
    """A loopback HTTP server whose every answer is `answer(request) -> (status, reason, headers, body)`."""

    def __init__(self, answer) -> None:
        self.answer, self.log = answer, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = {"method": self.command, "path": parts.path, "query": parts.query,
                           "headers": dict(self.headers), "body": raw}
                outer.log.append(request)
                status, reason, headers, data = outer.answer(request)
                self.send_response(status, reason)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def posts(self) -> list[dict]:
        return [r for r in self.log if r["method"] == "POST"]


def js(status: int, document: object, headers: dict | None = None, reason: str | None = None):
    return status, reason, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()


