#!/bin/sh
# MyCodePackageB: host MyServiceTypeB.
exec python3 -m sample_services.special_b "$@"
