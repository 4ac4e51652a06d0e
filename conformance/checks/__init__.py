"""Check families: plain `check_*(artifact, ...) -> CheckResult` functions, usable without pytest."""
