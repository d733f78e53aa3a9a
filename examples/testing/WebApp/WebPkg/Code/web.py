"""A stateless service that answers HTTP GET with its greeting, on its endpoint's port."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fabrichost.runtime import StatelessService, run_host


class Greeter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = os.environ.get("GREETING", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Web(StatelessService):
    def open(self) -> str:
        port = self.context.endpoints["Web"].port
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Greeter)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        print(f"serving on port {port}", flush=True)
        # Service Fabric's shape of an address with named endpoints.
        return json.dumps({"Endpoints": {"Web": f"http://127.0.0.1:{port}"}})

    def close(self) -> None:
        self.server.shutdown()


run_host({"WebType": Web})
