from conformance.checks.bundle import check_bundle_integrity


def test_bundle_integrity(bundle_dir, record_check):
    record_check(check_bundle_integrity(bundle_dir))
