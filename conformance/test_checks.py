"""Every check of the registry (conformance/registry.py) as a test named after it: `test_<check>[<case>]`."""

from conformance.registry import CHECKS
from fixtures.runner import make_test

globals().update({f"test_{check.name}": make_test(check) for check in CHECKS})
