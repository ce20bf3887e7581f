"""The local stack: every service, both stores, nginx and Prometheus on this machine.

`python -m local run|up|down|status` is the command line; `local.stack.LocalStack`
is the Python API that the command line and the end-to-end tests use.
"""
