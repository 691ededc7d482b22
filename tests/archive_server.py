"""An HTTP server on 127.0.0.1 for the download tests, and the small audio files their archives hold."""

from __future__ import annotations

import io
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def wav_bytes(seed: int, seconds: float = 0.05) -> bytes:
    """A short 16 kHz mono 16-bit wav of noise."""
    samples = np.random.default_rng(seed).integers(-3000, 3000, int(16000 * seconds), dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


class ArchiveServer:
    """HTTP server in a thread serving `files` {url path: bytes}. It honours `Range: bytes=N-` (206) unless
    `ignore_range`; `corrupt[path] = n` spoils the body of the next n responses; `cut[path] = k` closes the next
    response after k bytes. `requests` logs (path, Range header or None, body bytes sent)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.corrupt: dict[str, int] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                body = owner.files.get(self.path)
                if body is None:
                    owner.requests.append((self.path, None, 0))
                    self.send_error(404)
                    return
                if owner.corrupt.get(self.path, 0) > 0:
                    owner.corrupt[self.path] -= 1
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                header = self.headers.get("Range")
                start = 0
                if header and not owner.ignore_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        owner.requests.append((self.path, header, 0))
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if self.path in owner.cut:
                    payload = payload[:owner.cut.pop(self.path)]
                # logged before the body goes out: the client may be done (and asserting) as soon as it has it
                owner.requests.append((self.path, header, len(payload)))
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
