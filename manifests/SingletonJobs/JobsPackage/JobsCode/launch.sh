#!/bin/sh
# JobsCode: host EternalJob and EchoJob. `python3` is the agent's interpreter (first on PATH).
exec python3 -m sample_services.jobs "$@"
