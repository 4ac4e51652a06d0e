from conformance.checks.bundle import check_bundle_integrity


def test_bundle_integrity(bundle_dir, record_check, request):
    record_check(check_bundle_integrity(bundle_dir, weights=request.config.getoption("weights")))
