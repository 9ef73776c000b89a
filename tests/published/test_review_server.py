"""The review server over HTTP: the page and its files, items and flags, images only of queued items,
decisions appended on every request (and kept when the server dies), loopback Host check, the token."""
import http.client
import json
import multiprocessing
import os
import signal

import pytest

from builder.core.decisions import Decisions
from tests.review_fixtures import Running, make_work


@pytest.fixture
def served(tmp_path):
    ids = make_work(tmp_path / "work")
    run = Running(tmp_path / "work", tmp_path / "decisions.csv")
    yield run, ids, tmp_path / "decisions.csv"
    run.close()


def _req(run, method, path, body=None, headers=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=30)
    h = dict(headers or {})
    if host is not None:
        h["Host"] = host
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=h)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, res.getheader("Content-Type"), data


def test_page_items_and_images(served):
    run, ids, _ = served
    status, ctype, page = _req(run, "GET", "/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in page
    assert _req(run, "GET", "/static/app.js")[0] == 200
    items = json.loads(_req(run, "GET", "/api/items")[2])["queues"]
    assert [i["id"] for i in items["healthy"]] == sorted(ids["healthy"])
    assert [i["id"] for i in items["masks"]] == ids["masks"] and items["masks"][0]["info"]["confidence"] == 0.9
    assert items["healthy"][0]["views"] == ["photo", "overlay", "image"]
    status, ctype, png = _req(run, "GET", f"/img?q=healthy&id={ids['healthy'][0]}&v=overlay")
    assert status == 200 and ctype == "image/png" and png.startswith(b"\x89PNG")


@pytest.mark.parametrize("query", ["q=healthy&id=../../etc/passwd&v=image", "q=real&id=X&v=image",
                                   "q=healthy&id=ID&v=../labels", "q=masks&id=demo:000000&v=image"])
def test_images_of_anything_but_a_queued_items_view_are_refused(served, query):
    run, ids, _ = served
    status, _, body = _req(run, "GET", "/img?" + query.replace("ID", ids["healthy"][0]))
    assert status == 404 and b"error" in body


def test_each_decision_is_on_disk_before_the_reply(served):
    run, ids, path = served
    h = ids["healthy"]
    assert _req(run, "POST", "/api/decide", {"queue": "healthy", "id": h[0], "decision": "keep"})[0] == 200
    status, _, body = _req(run, "POST", "/api/decide", {"queue": "healthy", "id": h[1], "decision": "discard",
                                                        "criterion": "lesion_remains", "note": "still dark"})
    assert status == 200 and json.loads(body)["decisions"]["ann"]["criterion"] == "lesion_remains"
    lines = path.read_text().splitlines()
    assert lines[0] == "id,decision,criterion,reviewer,note,time" and len(lines) == 3
    assert Decisions.read(path).discarded() == {h[1]: "lesion_remains"}
    latest = json.loads(_req(run, "GET", "/api/decisions")[2])
    assert latest[h[0]]["ann"]["decision"] == "keep"


@pytest.mark.parametrize("body", [{"queue": "healthy", "id": "healthy-nope", "decision": "keep"},
                                  {"queue": "masks", "id": "HEALTHY", "decision": "keep"},
                                  {"queue": "healthy", "id": "HEALTHY", "decision": "discard", "criterion": "ugly"}])
def test_bad_decisions_are_refused_and_not_written(served, body):
    run, ids, path = served
    body = {k: (ids["healthy"][0] if v == "HEALTHY" else v) for k, v in body.items()}
    assert _req(run, "POST", "/api/decide", body)[0] == 400
    assert not path.exists()


def test_loopback_server_refuses_a_foreign_host_header(served):
    run, _, _ = served
    assert _req(run, "GET", "/api/items", host="evil.example:80")[0] == 403
    assert _req(run, "GET", "/api/items", host=f"localhost:{run.port}")[0] == 200


def test_an_explicit_host_needs_the_token_on_every_request(tmp_path):
    make_work(tmp_path / "work")
    run = Running(tmp_path / "work", tmp_path / "d.csv", host="127.0.0.1")
    try:
        token = run.review.token
        assert token and run.url.endswith(f"?token={token}")
        assert _req(run, "GET", "/api/items")[0] == 403
        assert _req(run, "GET", "/api/items?token=wrong")[0] == 403
        assert _req(run, "GET", "/")[0] == 403
        assert _req(run, "GET", "/api/items", headers={"X-Review-Token": token})[0] == 200
        assert _req(run, "GET", "/static/app.css", headers={"Cookie": f"review_token={token}"})[0] == 200
    finally:
        run.close()


def _serve_forever(work, path, port_q):
    run = Running(work, path)
    port_q.put(run.port)
    run.thread.join()


def test_killing_the_server_loses_no_decision(tmp_path):
    ids = make_work(tmp_path / "work")
    path = tmp_path / "d.csv"
    q = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=_serve_forever, args=(tmp_path / "work", path, q))
    proc.start()
    try:
        port = q.get(timeout=120)

        class Remote:
            pass
        remote = Remote()
        remote.port = port
        for i, h in enumerate(ids["healthy"]):
            body = {"queue": "healthy", "id": h, "decision": "keep"} if i % 2 else \
                {"queue": "healthy", "id": h, "decision": "discard", "criterion": "artefact"}
            assert _req(remote, "POST", "/api/decide", body)[0] == 200
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    rows = Decisions.read(path)
    assert len(rows.latest) == len(ids["healthy"]) and len(rows.discarded()) == len(ids["healthy"]) // 2
