"""The services of the reference scenario (SPEC §1), hosted by ``fabrichost.runtime``.

``my_service`` implements ``MyServiceType`` of ``manifests/MyApp``; ``special_a`` and
``special_b`` implement ``MyServiceTypeA`` and ``MyServiceTypeB`` of ``manifests/SpecialApp``.
Each replica answers a one-line TCP protocol with who it is, so the demo and the tests can see
which process and which role serve which replica.
"""

from __future__ import annotations
