"""MyServiceTypeB of MultiTypeServicePackage (manifests/SpecialApp), run by MyCodePackageB."""

from __future__ import annotations

from fabrichost.runtime import run_host
from sample_services.whoami import WhoAmIService


class MyServiceB(WhoAmIService):
    """Hosted only by MyCodePackageB, even in an activation that also runs MyCodePackageA."""


def main() -> None:
    run_host({"MyServiceTypeB": MyServiceB})


if __name__ == "__main__":
    main()
