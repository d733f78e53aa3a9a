#!/bin/sh
# MyCodePackageA: host MyServiceTypeA.
exec python3 -m sample_services.special_a "$@"
