from conformance.checks.contract import check_io_contract


def test_io_contract(subject, record_check):
    record_check(check_io_contract(subject.artifact, subject.variant))
