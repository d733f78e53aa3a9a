"""``MyServiceType`` of ``MyServicePackage`` (``manifests/MyApp``): run by ``MyCodePackage``."""

from __future__ import annotations

import logging

from fabrichost.runtime import run_host
from sample_services.whoami import WhoAmIService

_log = logging.getLogger(__name__)


class MyService(WhoAmIService):
    """The reference scenario's stateful service.

    It takes config changes while it runs: an upgrade that changes only its ``Config`` package
    hands it the new settings (``self.context.config``, which ``describe()`` reads) instead of
    restarting its process.
    """

    def config_changed(self, package: str) -> None:
        section = self.context.config.get("MyConfigSection", {})
        _log.info("config package %s changed: Greeting is now %r", package, section.get("Greeting"))


def main() -> None:
    run_host({"MyServiceType": MyService})


if __name__ == "__main__":
    main()
