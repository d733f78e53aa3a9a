"""MyServiceTypeA of MultiTypeServicePackage (manifests/SpecialApp), run by MyCodePackageA."""

from __future__ import annotations

from fabrichost.runtime import run_host
from sample_services.whoami import WhoAmIService


class MyServiceA(WhoAmIService):
    """Hosted only by MyCodePackageA, even in an activation that also runs MyCodePackageB."""


def main() -> None:
    run_host({"MyServiceTypeA": MyServiceA})


if __name__ == "__main__":
    main()
