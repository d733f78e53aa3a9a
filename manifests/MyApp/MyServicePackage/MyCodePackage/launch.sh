#!/bin/sh
# MyCodePackage: host MyServiceType. `python3` is the agent's interpreter (first on PATH).
exec python3 -m sample_services.my_service "$@"
