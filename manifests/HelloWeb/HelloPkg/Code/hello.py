"""HelloWeb's service: answers every HTTP GET with a greeting, on its endpoint's port.

Its code lives here, in its code package: under `fabrichost dev`, a save of this file restarts
the code package with the new code. The greeting comes from ../Config/Settings.xml; the service
subscribes to its changes (it overrides ``config_changed``), so a save of Settings.xml reaches
the running process, which answers with the new greeting without a restart.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fabrichost.runtime import StatelessService, run_host


def answer(greeting: str) -> str:
    """What every GET answers: edit it, save, and ask again."""
    return f"{greeting}, world!\n"


class GreetingServer(ThreadingHTTPServer):
    """An HTTP server that knows the greeting of the moment."""

    greeting = ""


class GreetingHandler(BaseHTTPRequestHandler):
    server: GreetingServer

    def do_GET(self) -> None:
        body = answer(self.server.greeting).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would bury the service's own lines in `fabrichost dev`


class Hello(StatelessService):
    def open(self) -> str:
        port = self.context.endpoints["Web"].port
        self.server = GreetingServer(("127.0.0.1", port), GreetingHandler)
        self.server.greeting = self.greeting()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{port}/"
        print(f"serving {url} (Greeting {self.server.greeting!r})", flush=True)
        # Service Fabric's shape of an address with named endpoints.
        return json.dumps({"Endpoints": {"Web": url}})

    def config_changed(self, package: str) -> None:
        # Overriding this is the subscription: an upgrade that changes only the config package
        # hands the new settings to this process instead of restarting it.
        self.server.greeting = self.greeting()
        print(f"{package} changed: Greeting is now {self.server.greeting!r}", flush=True)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def greeting(self) -> str:
        return self.context.config["Greeter"]["Greeting"]


run_host({"HelloType": Hello})
