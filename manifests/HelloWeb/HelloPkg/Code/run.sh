#!/bin/sh
# The agent puts its own interpreter first on PATH: python3 is the one fabrichost runs on.
exec python3 hello.py
