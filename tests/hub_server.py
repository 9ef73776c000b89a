"""A loopback Hugging Face Hub: the HTTP endpoints `huggingface_hub` and `datasets` use, in memory.

No Hub-compatible server can be installed offline, so push and load tests talk to
this one over real HTTP with the real clients. It implements repo create/info, preupload, the
LFS batch API + basic PUT upload, NDJSON commits, tags and refs, repo settings (gated access,
visibility), tree and paths-info listings, and
`resolve` downloads (HEAD and ranged GET) at any branch, tag or commit. Start it with
`HubServer(token=...)` as a context manager and point `HfApi(endpoint=server.url)` or `HF_ENDPOINT`
at it (with `HF_HUB_DISABLE_XET=1`). Every request line is kept in `server.requests` (headers are
kept apart in `server.auth_headers` so tests can check the token travelled only there).
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_MIN_BYTES = 10 * 1024 * 1024  # like the Hub: binaries (by .gitattributes) and files >= 10 MB go through LFS
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclasses.dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]  # path -> content (the whole tree at this commit)


@dataclasses.dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    gated: str | bool = False  # the Hub's gated access: False, "auto" or "manual"
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision in self.commits:
            oid = revision
        return self.commits.get(oid) if oid else None

    def add_commit(self, parent: str | None, message: str, files: dict[str, bytes]) -> Commit:
        h = hashlib.sha1(f"{parent}\n{message}\n".encode())
        for path in sorted(files):
            h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
        commit = Commit(h.hexdigest(), parent, message, dict(files))
        self.commits[commit.oid] = commit
        return commit


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubServer:
    """In-memory Hub on 127.0.0.1:<free port>; `token` (when set) is required for every write."""

    def __init__(self, token: str | None = None, lfs_min_bytes: int = LFS_MIN_BYTES):
        self.token = token
        self.lfs_min_bytes = lfs_min_bytes
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.refuse_settings = False  # tests: the Hub answers 403 to a settings change (e.g. a plan without gating)
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- state helpers used by tests -----------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def commits_on(self, repo_id: str, branch: str = "main", repo_type: str = "dataset") -> list[Commit]:
        repo, out = self.repo(repo_id, repo_type), []
        oid = repo.branches.get(branch)
        while oid:
            out.append(repo.commits[oid])
            oid = repo.commits[oid].parent
        return out


# -- routing -----------------------------------------------------------------------------
_PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}
_REPO = r"(?P<rid>[^/]+/[^/]+)"
_API = rf"^/api/(?P<rtype>datasets|models|spaces)/{_REPO}"
ROUTES = [
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("GET", _API + r"(?:/revision/(?P<rev>[^/]+))?$", "repo_info"),
    ("POST", _API + r"/preupload/(?P<rev>[^/]+)$", "preupload"),
    ("POST", _API + r"/commit/(?P<rev>[^/]+)$", "commit"),
    ("POST", _API + r"/tag/(?P<rev>[^/]+)$", "create_tag"),
    ("DELETE", _API + r"/tag/(?P<tag>[^/]+)$", "delete_tag"),
    ("GET", _API + r"/refs$", "refs"),
    ("PUT", _API + r"/settings$", "settings"),
    ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
    ("POST", _API + r"/paths-info/(?P<rev>[^/]+)$", "paths_info"),
    ("POST", r"^/(?P<rtype>datasets/|spaces/|)" + _REPO + r"\.git/info/lfs/objects/batch$", "lfs_batch"),
    ("PUT", r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$", "lfs_put"),
    ("HEAD", r"^/(?P<rtype>datasets/|spaces/|)" + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ("GET", r"^/(?P<rtype>datasets/|spaces/|)" + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
]
_RTYPE = {"datasets": "dataset", "models": "model", "spaces": "space",
          "datasets/": "dataset", "": "model", "spaces/": "space"}


def _make_handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: tests read hub.requests instead
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        def do_PUT(self):
            self._dispatch("PUT")

        def do_DELETE(self):
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            with hub.lock:
                hub.requests.append(f"{method} {self.path}")
                if self.headers.get("Authorization"):
                    hub.auth_headers.append(self.headers["Authorization"])
            try:
                for m, pattern, name in ROUTES:
                    match = re.match(pattern, parts.path)
                    if m == method and match:
                        args = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                        if "rtype" in args:
                            args["rtype"] = _RTYPE[args["rtype"]]
                        self._check_auth(method, name)
                        with hub.lock:
                            result = getattr(_Api(hub, self, parse_qs(parts.query), body), name)(**args)
                        return self._send(*result)
                raise HubError(404, f"no route for {method} {parts.path}")
            except HubError as e:
                headers = {"X-Error-Code": e.code} if e.code else {}
                headers["X-Error-Message"] = e.message
                self._send(e.status, json.dumps({"error": e.message}).encode(), "application/json", headers)

        def _check_auth(self, method: str, name: str) -> None:
            if hub.token is None or name in ("lfs_put", "validate_yaml"):
                return
            if method in ("POST", "PUT", "DELETE") and self.headers.get("Authorization") != f"Bearer {hub.token}":
                raise HubError(401, "Invalid credentials in Authorization header")

        def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def _json(obj, status: int = 200, headers: dict | None = None):
    return status, json.dumps(obj).encode(), "application/json", headers or {}


class _Api:
    """One request's handlers; each returns (status, body, content type, headers)."""

    def __init__(self, hub: HubServer, handler, query: dict, body: bytes):
        self.hub, self.handler, self.query, self.body = hub, handler, query, body

    def _repo(self, rtype: str, rid: str) -> Repo:
        repo = self.hub.repos.get((rtype, rid))
        if repo is None:
            raise HubError(404, f"Repository {rid!r} not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, rev: str | None) -> Commit:
        commit = repo.resolve(rev or "main")
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _file_entry(self, path: str, data: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
        if path != ".gitattributes" and self._is_lfs(path, len(data)):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _is_lfs(self, path: str, size: int) -> bool:
        return path.endswith((".parquet", ".png", ".jpg")) or size >= self.hub.lfs_min_bytes

    # -- repos -------------------------------------------------------------------------
    def create_repo(self):
        p = json.loads(self.body)
        rid = f"{p['organization']}/{p['name']}" if p.get("organization") else p["name"]
        rtype = p.get("type") or "model"
        if "/" not in rid:
            raise HubError(400, f"repo id {rid!r} needs a namespace (ORG/NAME)")
        url = f"{self.hub.url}/{_PREFIX[rtype]}{rid}"
        if (rtype, rid) in self.hub.repos:
            return _json({"error": f"You already created this {rtype} repo", "url": url}, status=409)
        repo = Repo(rid, rtype, bool(p.get("private") or p.get("visibility") == "private"))
        first = repo.add_commit(None, "initial commit", {".gitattributes": GITATTRIBUTES})
        repo.branches["main"] = first.oid
        self.hub.repos[(rtype, rid)] = repo
        return _json({"url": url, "name": rid, "id": rid})

    def settings(self, rtype, rid):
        """`HfApi.update_repo_settings`: gated access (False, "auto", "manual") and visibility."""
        repo = self._repo(rtype, rid)
        if self.hub.refuse_settings:
            raise HubError(403, "settings cannot be changed for this repo")
        p = json.loads(self.body)
        if "gated" in p:
            if p["gated"] not in (False, "auto", "manual"):
                raise HubError(400, f"gated must be false, 'auto' or 'manual', not {p['gated']!r}")
            repo.gated = p["gated"]
        if "visibility" in p:
            repo.private = p["visibility"] == "private"
        elif "private" in p:
            repo.private = bool(p["private"])
        return _json({})

    def validate_yaml(self):
        return _json({"errors": [], "warnings": []})

    def repo_info(self, rtype, rid, rev=None):
        repo = self._repo(rtype, rid)
        commit = self._commit(repo, rev)
        return _json({"id": rid, "_id": rid, "author": rid.split("/")[0], "sha": commit.oid,
                      "private": repo.private, "disabled": False, "gated": repo.gated, "tags": [],
                      "lastModified": "2026-11-25T00:00:00.000Z", "createdAt": "2026-11-25T00:00:00.000Z",
                      "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    # -- uploads -------------------------------------------------------------------------
    def preupload(self, rtype, rid, rev):
        repo = self._repo(rtype, rid)
        current = repo.resolve(rev)
        files = []
        for f in json.loads(self.body)["files"]:
            lfs = self._is_lfs(f["path"], f["size"])
            oid = None
            if current and f["path"] in current.files:
                data = current.files[f["path"]]
                oid = hashlib.sha256(data).hexdigest() if lfs else git_blob_oid(data)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False, "oid": oid})
        return _json({"files": files, "commitOid": current.oid if current else None})

    def lfs_batch(self, rtype, rid):
        self._repo(rtype, rid)
        objects = []
        for obj in json.loads(self.body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:  # already stored: no actions, the client skips it
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        return _json({"transfer": "basic", "objects": objects}, headers={})

    def lfs_put(self, oid):
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"uploaded bytes do not hash to {oid}")
        self.hub.lfs[oid] = self.body
        return _json({})

    def commit(self, rtype, rid, rev):
        repo = self._repo(rtype, rid)
        if rev not in repo.branches:
            raise HubError(404, f"Invalid rev id: {rev} (commits go to branches)", "RevisionNotFound")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = lines[0]["value"]
        parent = repo.commits[repo.branches[rev]]
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {rev}")
        files = dict(parent.files)
        for item in lines[1:]:
            key, v = item["key"], item["value"]
            if key == "file":
                files[v["path"]] = base64.b64decode(v["content"])
            elif key == "lfsFile":
                if v["oid"] not in self.hub.lfs:
                    raise HubError(400, f"LFS object {v['oid']} for {v['path']} was never uploaded")
                files[v["path"]] = self.hub.lfs[v["oid"]]
            elif key == "deletedFile":
                files.pop(v["path"], None)
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(v["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        commit = repo.add_commit(parent.oid, header.get("summary", ""), files)
        repo.branches[rev] = commit.oid
        url = f"{self.hub.url}/{_PREFIX[rtype]}{rid}/commit/{commit.oid}"
        return _json({"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None, "success": True})

    # -- refs ----------------------------------------------------------------------------
    def create_tag(self, rtype, rid, rev):
        repo = self._repo(rtype, rid)
        commit = self._commit(repo, rev)
        tag = json.loads(self.body)["tag"]
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.oid
        return _json({})

    def delete_tag(self, rtype, rid, tag):
        repo = self._repo(rtype, rid)
        if repo.tags.pop(tag, None) is None:
            raise HubError(404, f"Tag {tag} not found", "RevisionNotFound")
        return _json({})

    def refs(self, rtype, rid):
        repo = self._repo(rtype, rid)
        def ref(name, kind, oid):
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
        return _json({"branches": [ref(n, "heads", o) for n, o in sorted(repo.branches.items())],
                      "tags": [ref(n, "tags", o) for n, o in sorted(repo.tags.items())],
                      "converts": [], "pullRequests": []})

    # -- reading -------------------------------------------------------------------------
    def tree(self, rtype, rid, rev, path=None):
        commit = self._commit(self._repo(rtype, rid), rev)
        prefix = (path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = self._listing(commit, prefix, recursive)
        if prefix and not entries and prefix not in commit.files:
            raise HubError(404, f"{prefix} does not exist at {rev}", "EntryNotFound")
        return _json(entries)

    def _listing(self, commit: Commit, prefix: str, recursive: bool) -> list[dict]:
        base = prefix + "/" if prefix else ""
        files, dirs = [], set()
        for p, data in sorted(commit.files.items()):
            if not p.startswith(base):
                continue
            rest = p[len(base):].split("/")
            for i in range(1, len(rest) if recursive else min(2, len(rest))):
                dirs.add(base + "/".join(rest[:i]))
            if recursive or len(rest) == 1:
                files.append(self._file_entry(p, data))
        folders = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()}
                   for d in sorted(dirs)]
        return folders + files

    def paths_info(self, rtype, rid, rev):
        commit = self._commit(self._repo(rtype, rid), rev)
        form = parse_qs(self.body.decode())
        out = []
        for p in form.get("paths", []):
            p = p.strip("/")
            if p in commit.files:
                out.append(self._file_entry(p, commit.files[p]))
            elif any(f.startswith(p + "/") for f in commit.files):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()})
        return _json(out)

    def resolve(self, rtype, rid, rev, path):
        repo = self._repo(rtype, rid)
        commit = self._commit(repo, rev)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path} at {rev}", "EntryNotFound")
        data = commit.files[path]
        entry = self._file_entry(path, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        status, body = 200, data
        rng = self.handler.headers.get("Range")
        if rng:
            status, body, headers["Content-Range"] = _byte_range(rng, data)
        return status, body, "application/octet-stream", headers


def _byte_range(header: str, data: bytes) -> tuple[int, bytes, str]:
    """HTTP Range `bytes=a-b`, `bytes=a-` or `bytes=-n` -> (206, slice, Content-Range)."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise HubError(416, f"unsupported Range {header!r}")
    n = len(data)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
    else:
        start, end = max(0, n - int(m.group(2))), n - 1
    if start >= n:
        raise HubError(416, f"Range {header!r} starts past the end ({n} bytes)")
    return 206, data[start:end + 1], f"bytes {start}-{end}/{n}"
