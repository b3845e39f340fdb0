"""The viewer's HTTP server: the standard library's :class:`~http.server.ThreadingHTTPServer`
serving the packaged page (``static/``) and the JSON, PNG and CSV routes of
:class:`chexplain.view.api.Api`. It binds the loopback by default, refuses requests for
another host name (a web page elsewhere cannot reach it through DNS rebinding), sends every
answer with a strict Content-Security-Policy (the page's own scripts only) and serves files
only from inside the viewed folder."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ChexplainError
from .api import Api, BadRequest, Reply, json_reply
from .folders import ResultFolder, open_folder

STATIC = {"index.html": "text/html; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "util.js": "text/javascript; charset=utf-8", "explain.js": "text/javascript; charset=utf-8",
          "compare.js": "text/javascript; charset=utf-8", "audit.js": "text/javascript; charset=utf-8",
          "scatter.js": "text/javascript; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_BODY = 8 << 20  #: the largest request body (an export of many members)


@dataclass(frozen=True)
class ViewOptions:
    """Where to serve: ``port`` 0 lets the system choose a free one."""

    host: str = "127.0.0.1"
    port: int = 8765


def check_options(options: ViewOptions) -> None:
    """Port range and host name, before anything is read or bound."""
    if not 0 <= int(options.port) <= 65535:
        raise ChexplainError(f"--port {options.port} must lie between 0 and 65535")
    try:
        socket.getaddrinfo(options.host, None)
    except (socket.gaierror, UnicodeError):
        raise ChexplainError(f"--host {options.host!r}: not an address or a known host name") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def static_file(name: str) -> bytes:
    return resources.files("chexplain.view").joinpath("static", name).read_bytes()


class ViewServer(ThreadingHTTPServer):
    """One viewer: the folder's :class:`Api` and the host names it answers to."""

    daemon_threads = True

    def __init__(self, folder: ResultFolder, options: ViewOptions) -> None:
        self.api = Api(folder)
        self.options = options
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        self.address_family = family
        try:
            super().__init__((options.host, int(options.port)), Handler)
        except OSError as exc:
            raise ChexplainError(f"cannot serve on {options.host}:{options.port} "
                                 f"({exc.strerror or exc}); choose another --port") from None
        port = self.server_address[1]
        self.allowed_hosts = None if not is_loopback(options.host) else {
            f"{h}:{port}" for h in ("localhost", "127.0.0.1", "[::1]", options.host)}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"
    server_version = "chexplain-view"

    def log_message(self, format: str, *args) -> None:  # quiet: the terminal is the user's
        pass

    def _send(self, reply: Reply, head_only: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if "Cache-Control" not in reply.headers:
            self.send_header("Cache-Control", "no-cache")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            self.wfile.write(reply.body)

    def _host_ok(self) -> bool:
        allowed = self.server.allowed_hosts
        return allowed is None or self.headers.get("Host", "") in allowed

    def _answer(self, make) -> None:
        if not self._host_ok():
            self._send(json_reply({"error": "unknown host"}, 403))
            return
        try:
            reply = make()
        except BadRequest as exc:
            reply = json_reply({"error": str(exc)}, 400)
        except ChexplainError as exc:
            reply = json_reply({"error": str(exc)}, 400)
        except (KeyError, IndexError) as exc:
            reply = json_reply({"error": f"not found: {exc}"}, 404)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # a bug: the page shows it, the server keeps serving
            print(f"chexplain view: {type(exc).__name__}: {exc}", file=sys.stderr)
            reply = json_reply({"error": f"{type(exc).__name__}: {exc}"}, 500)
        try:
            self._send(reply, head_only=self.command == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self) -> Reply:
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return Reply(200, static_file("index.html"), STATIC["index.html"])
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in STATIC:  # only the page's own files, by name
                raise KeyError(name)
            return Reply(200, static_file(name), STATIC[name])
        route = self.server.api.routes.get(path)
        if route is None:
            raise KeyError(path)
        from .api import Query

        return route(Query(url.query))

    def do_GET(self) -> None:
        self._answer(self._route)

    def do_HEAD(self) -> None:
        self._answer(self._route)

    def do_POST(self) -> None:
        def post() -> Reply:
            if urlsplit(self.path).path != "/api/audit/export":
                raise KeyError(self.path)
            if "json" not in self.headers.get("Content-Type", ""):
                raise BadRequest("send JSON")
            n = int(self.headers.get("Content-Length") or 0)
            if not 0 <= n <= MAX_BODY:
                raise BadRequest("request body too large")
            return self.server.api.audit_export(self.rfile.read(n))

        self._answer(post)


def make_server(folder: str | Path, options: ViewOptions | None = None) -> ViewServer:
    """A server over the result folder (checked first), bound and ready to serve."""
    options = options or ViewOptions()
    check_options(options)
    return ViewServer(open_folder(folder), options)


def serve(folder: str | Path, options: ViewOptions | None = None, open_browser: bool = True,
          say=print) -> None:
    """Serve until Ctrl-C (or SIGTERM); then stop cleanly (the open connections are closed)."""
    server = make_server(folder, options)
    say(f"chexplain view: {server.api.folder.root} ({server.api.folder.kind}) at {server.url} "
        "(Ctrl-C stops)")
    if not is_loopback(server.options.host):
        say("chexplain view: note: not on the loopback; anyone who can reach this machine can "
            "read these results")
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    stop_on_sigterm = threading.current_thread() is threading.main_thread()
    if stop_on_sigterm:  # ``kill`` stops it as cleanly as Ctrl-C
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if stop_on_sigterm:
            signal.signal(signal.SIGTERM, previous)
    say("chexplain view: stopped")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
