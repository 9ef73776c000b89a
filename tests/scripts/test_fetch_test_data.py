"""scripts/fetch_test_data.py against a loopback HTTP server: sha256 checked, nothing half-written, resumable."""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA_LAYOUT

_spec = importlib.util.spec_from_file_location("fetch_test_data", REPO_ROOT / "scripts" / "fetch_test_data.py")
fetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch)


class _Server:
    """Serves `routes` (URL path -> bytes, a Path, or an int HTTP status) and counts the requests."""

    def __init__(self, routes: dict):
        self.routes, self.hits = routes, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = urllib.parse.unquote(self.path)
                server.hits.append(path)
                body = server.routes.get(path, 404)
                if callable(body):
                    body = body()
                if isinstance(body, int):
                    self.send_error(body)
                    return
                data = body.read_bytes() if isinstance(body, Path) else body
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(routes):
        servers.append(_Server(routes))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _entry(rel: str, data: bytes, url_path: str) -> dict:
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "url": f"https://raw.githubusercontent.com{url_path}"}


def _manifest(*files) -> dict:
    return {"sources": {}, "files": list(files), "derived": [], "sddi_splits": {}, "fitz17k_cases": {}}


def test_fetches_verifies_and_skips_verified_files_on_rerun(serve, tmp_path):
    a, b = b"mask bytes", b"photo bytes" * 100
    m = _manifest(_entry("sddi_masks/000001.npy", a, "/o/FEDD/c/ddi_labels/training/15%/train/000001.npy"),
                  _entry("fitz17k_lesions/images/x.jpg", b, "/o/D3D/c/data/x/image.jpg"))
    server = serve({"/o/FEDD/c/ddi_labels/training/15%/train/000001.npy": a, "/o/D3D/c/data/x/image.jpg": b})
    counts, problems = fetch.fetch_all(m, tmp_path, mirror=server.url, quiet=True)
    assert problems == [] and counts == {"fetched": 2}
    assert (tmp_path / "sddi_masks" / "000001.npy").read_bytes() == a
    assert (tmp_path / "fitz17k_lesions" / "images" / "x.jpg").read_bytes() == b
    assert not (tmp_path / ".partial").exists()
    server.hits.clear()
    counts, problems = fetch.fetch_all(m, tmp_path, mirror=server.url, quiet=True)
    assert counts == {"present": 2} and server.hits == []  # verified files are not downloaded again


def test_wrong_bytes_are_refused_and_nothing_is_written(serve, tmp_path, capsys):
    good = _entry("ddi_metadata.csv", b"the real table", "/o/r/c/ddi_metadata.csv")
    server = serve({"/o/r/c/ddi_metadata.csv": b"an altered table"})
    manifest = tmp_path / "m.json"
    manifest.write_text(__import__("json").dumps(_manifest(good)))
    rc = fetch.main(["--dest", str(tmp_path / "data"), "--mirror", server.url, "--manifest", str(manifest), "-q"])
    out = capsys.readouterr()
    assert rc == 1
    got = hashlib.sha256(b"an altered table").hexdigest()
    assert f"ddi_metadata.csv: sha256 {got} from {server.url}/o/r/c/ddi_metadata.csv, expected {good['sha256']}" \
        in out.err
    assert "rerun the same command" in out.out
    assert not (tmp_path / "data" / "ddi_metadata.csv").exists()


def test_missing_url_is_named_and_transient_errors_are_retried(serve, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.0)
    flaky = iter([503, b"second try"])
    m = _manifest(_entry("a.csv", b"x", "/o/r/c/gone.csv"), _entry("b.csv", b"second try", "/o/r/c/flaky.csv"))
    server = serve({"/o/r/c/flaky.csv": lambda: next(flaky)})
    counts, problems = fetch.fetch_all(m, tmp_path, mirror=server.url, quiet=True)
    assert counts == {"fetched": 1} and (tmp_path / "b.csv").read_bytes() == b"second try"
    assert problems == [f"a.csv: HTTP 404 Not Found from {server.url}/o/r/c/gone.csv"]
    assert server.hits.count("/o/r/c/gone.csv") == 1  # a 404 is not retried


def test_unreachable_host_names_the_url_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.0)
    server = _Server({})
    dead = server.url
    server.close()  # nothing listens there any more
    counts, problems = fetch.fetch_all(_manifest(_entry("a.csv", b"x", "/o/r/c/a.csv")), tmp_path, mirror=dead,
                                       quiet=True)
    assert len(problems) == 1 and problems[0].startswith(f"a.csv: cannot reach {dead}/o/r/c/a.csv")
    assert "pass --mirror" in problems[0]


def test_git_lfs_pointer_is_followed_to_the_media_host(serve, tmp_path):
    real = b"\x89PNG real image"
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 15\n"
    m = _manifest(_entry("fitz17k_lesions/masks/x_lesions.png", real, "/o/D3D/c/data/x/lesions.png"))
    server = serve({"/o/D3D/c/data/x/lesions.png": pointer, "/media/o/D3D/c/data/x/lesions.png": real})
    counts, problems = fetch.fetch_all(m, tmp_path, mirror=server.url, quiet=True)
    assert problems == [] and (tmp_path / "fitz17k_lesions/masks/x_lesions.png").read_bytes() == real


def test_own_ddi_metadata_copy_is_sha_checked(tmp_path, capsys):
    entry = _entry("ddi_metadata.csv", b"the real table", "/o/r/c/ddi_metadata.csv")
    mine = tmp_path / "mine.csv"
    mine.write_bytes(b"the real table")
    counts, problems = fetch.fetch_all(_manifest(entry), tmp_path / "d", ddi_metadata=mine, quiet=True)
    assert counts == {"copied": 1} and problems == []
    mine.write_bytes(b"edited table")
    counts, problems = fetch.fetch_all(_manifest(entry), tmp_path / "e", ddi_metadata=mine, quiet=True)
    assert problems and "use the table exactly as DDI publishes it" in problems[0]


def test_manifest_covers_every_data_file_the_tests_read():
    m = fetch.load_manifest()
    paths = {e["path"] for e in m["files"] + m["derived"]}
    assert set(SHARED_DATA_LAYOUT) <= paths
    assert sum(p.startswith("sddi_masks/") and p.endswith(".npy") for p in paths) == 333
    assert sum(p.startswith("fitz17k_lesions/images/") for p in paths) == 39
    for e in m["files"]:
        assert e["url"].startswith("https://raw.githubusercontent.com/") and len(e["sha256"]) == 64
        commit = e["url"].split("/")[5]
        assert commit in {s["commit"] for s in m["sources"].values()}, e["url"]


def test_full_fetch_over_loopback_reproduces_the_data_folder(shared_data, serve, tmp_path):
    """Every file served from the real folder at its pinned URL path; the fetched folder verifies byte for byte."""
    m = fetch.load_manifest()
    routes = {}
    for e in m["files"]:
        routes[urllib.parse.unquote(urllib.parse.urlsplit(e["url"]).path)] = shared_data / e["path"]
    server = serve(routes)
    dest = tmp_path / "data"
    assert fetch.main(["--dest", str(dest), "--mirror", server.url, "-q"]) == 0
    assert fetch.check_all(m, dest) == []
    for e in m["derived"]:  # computed, not downloaded: the same bytes as the folder the tests use
        assert (dest / e["path"]).read_bytes() == (shared_data / e["path"]).read_bytes()
        assert "/" + e["path"] not in "".join(server.hits)
    assert all((dest / rel).is_file() for rel in SHARED_DATA_LAYOUT)
    assert "sfu-mial/DermSynth3D @ c6d6a3d" in (dest / "README.md").read_text()
    (dest / "sddi_masks" / "000001.npy").write_bytes(b"damaged")
    assert fetch.main(["--dest", str(dest), "--check"]) == 1
    server.hits.clear()
    assert fetch.main(["--dest", str(dest), "--mirror", server.url, "-q"]) == 0  # repairs just that file
    assert len(server.hits) == 1 and server.hits[0].endswith("/000001.npy")
