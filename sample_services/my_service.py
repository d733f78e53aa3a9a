"""``MyServiceType`` of ``MyServicePackage`` (``manifests/MyApp``): run by ``MyCodePackage``."""

from __future__ import annotations

from fabrichost.runtime import run_host
from sample_services.whoami import WhoAmIService


class MyService(WhoAmIService):
    """The reference scenario's stateful service."""


def main() -> None:
    run_host({"MyServiceType": MyService})


if __name__ == "__main__":
    main()
