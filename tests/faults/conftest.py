"""Fixtures of the fault tests: the service tests' Storage on real servers."""

from tests.integration.conftest import storage  # noqa: F401
