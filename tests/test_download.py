"""`download` against a real HTTP server on 127.0.0.1 serving a tiny Tiny-ImageNet zip."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyviz.data.archive import DataError, open_archive
from tinyviz.data.download import FILENAME, describe_missing, download

WNIDS = ("n00000001", "n00000002", "n00000003")


def _jpeg(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def make_tiny_zip(per_class: int = 4, val: int = 6) -> bytes:
    """A zip with the official layout under `tiny-imagenet-200/`, small enough for a test."""
    rng = np.random.default_rng(0)
    root = "tiny-imagenet-200/"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(root + "wnids.txt", "".join(w + "\n" for w in WNIDS))
        zf.writestr(
            root + "words.txt",
            "".join(f"{w}\tthing {i}, other name\n" for i, w in enumerate(WNIDS)),
        )
        for w in WNIDS:
            boxes = "".join(f"{w}_{k}.JPEG\t0\t0\t63\t63\n" for k in range(per_class))
            zf.writestr(f"{root}train/{w}/{w}_boxes.txt", boxes)
            for k in range(per_class):
                zf.writestr(f"{root}train/{w}/images/{w}_{k}.JPEG", _jpeg(rng))
        lines = []
        for k in range(val):
            zf.writestr(f"{root}val/images/val_{k}.JPEG", _jpeg(rng))
            lines.append(f"val_{k}.JPEG\t{WNIDS[k % len(WNIDS)]}\t0\t0\t63\t63\n")
        zf.writestr(root + "val/val_annotations.txt", "".join(lines))
    return buf.getvalue()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that hang up are expected
        pass


class Server:
    """Routes: /tiny.zip, /short (Content-Length larger than the body), /half.zip
    (a truncated zip with an honest length), /slow (stalls), anything else 404."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.hits: list[str] = []
        self.httpd = QuietServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.hits.append(self.path)
                body, length = server.payload, None
                if self.path == "/short":
                    body, length = body[: len(body) // 2], len(body)
                elif self.path == "/half.zip":
                    body = body[: len(body) // 2]
                elif self.path == "/slow":
                    time.sleep(2)
                elif self.path != "/tiny.zip":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(length or len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture(scope="module")
def payload() -> bytes:
    return make_tiny_zip()


@pytest.fixture
def server(payload):
    s = Server(payload)
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fixture_zip_is_a_valid_archive(tmp_path, payload):
    path = tmp_path / "t.zip"
    path.write_bytes(payload)
    archive = open_archive(path)
    assert len(archive.classes) == 3 and len(archive.train) == 12 and len(archive.val) == 6
    assert archive.classes.names[0] == "thing 0"


def test_download_with_callback_and_digest(tmp_path, server, payload):
    calls: list[tuple[int, int]] = []
    digest = hashlib.sha256(payload).hexdigest()
    out = download(
        server.url("/tiny.zip"),
        tmp_path / "data",
        sha256=digest.upper(),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert out == tmp_path / "data" / FILENAME
    assert out.read_bytes() == payload
    assert calls and calls[-1] == (len(payload), len(payload))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert _leftovers(tmp_path / "data") == [FILENAME]
    assert len(open_archive(out).train) == 12


def test_tqdm_bar_and_silent(tmp_path, server, capsys):
    download(server.url("/tiny.zip"), tmp_path / "a", progress=True)
    assert "downloading Tiny ImageNet" in capsys.readouterr().err
    download(server.url("/tiny.zip"), tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_sha256_mismatch_leaves_nothing(tmp_path, server, payload):
    with pytest.raises(DataError, match="SHA-256 mismatch") as e:
        download(server.url("/tiny.zip"), tmp_path, progress=False, sha256="0" * 64)
    assert "0" * 64 in str(e.value) and hashlib.sha256(payload).hexdigest() in str(e.value)
    assert "\n" not in str(e.value)
    assert _leftovers(tmp_path) == []


def test_short_body_is_refused(tmp_path, server, payload):
    with pytest.raises(DataError, match=r"download of .*/short failed: connection closed"):
        download(server.url("/short"), tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_truncated_zip_is_refused(tmp_path, server):
    with pytest.raises(DataError, match="not a usable Tiny ImageNet"):
        download(server.url("/half.zip"), tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_404(tmp_path, server):
    with pytest.raises(DataError, match=r"download of .*/missing.zip failed: HTTP 404"):
        download(server.url("/missing.zip"), tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_connection_refused(tmp_path, server):
    url = server.url("/tiny.zip")
    server.httpd.shutdown()
    server.httpd.server_close()  # the port is now closed
    with pytest.raises(DataError, match="download of .* failed: "):
        download(url, tmp_path, progress=False, timeout=5)


def test_timeout(tmp_path, server):
    start = time.monotonic()
    with pytest.raises(DataError, match="download of .*/slow failed"):
        download(server.url("/slow"), tmp_path, progress=False, timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert _leftovers(tmp_path) == []


def test_existing_good_file_is_kept(tmp_path, server, payload):
    download(server.url("/tiny.zip"), tmp_path, progress=False)
    assert server.hits == ["/tiny.zip"]
    again = download(
        server.url("/tiny.zip"),
        tmp_path,
        progress=False,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    assert again == tmp_path / FILENAME and server.hits == ["/tiny.zip"]
    download(server.url("/tiny.zip"), tmp_path, progress=False, force=True)
    assert server.hits == ["/tiny.zip", "/tiny.zip"]


def test_existing_bad_file_is_replaced(tmp_path, server, payload):
    (tmp_path / FILENAME).write_bytes(payload[:1000])
    out = download(server.url("/tiny.zip"), tmp_path, progress=False)
    assert out.read_bytes() == payload and server.hits == ["/tiny.zip"]


def test_existing_file_with_other_digest_is_replaced(tmp_path, server, payload):
    other = make_tiny_zip(per_class=2)
    (tmp_path / FILENAME).write_bytes(other)
    out = download(
        server.url("/tiny.zip"),
        tmp_path,
        progress=False,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    assert out.read_bytes() == payload and server.hits == ["/tiny.zip"]


def test_describe_missing():
    text = describe_missing()
    assert "python -m tinyviz download" in text
    assert "TINYVIZ_DATA" in text and "data/tiny-imagenet-200.zip" in text
    assert "**" not in text and "#" not in text


def test_two_askers_download_once_and_share_the_progress(tmp_path, server, payload):
    """Two sessions (or a session and `tinyviz download`) asking at once: one download, the
    other waits for it and keeps its file; its progress is the task's, for every page."""
    from tinyviz.data.download import download_task

    got, start = [], threading.Barrier(2)

    def ask() -> None:
        start.wait()
        got.append(download(server.url("/tiny.zip"), tmp_path, progress=False))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == [tmp_path / FILENAME] * 2 and server.hits.count("/tiny.zip") == 1
    state = download_task(tmp_path).state()
    assert state.state == "done" and state.fraction == 1.0
