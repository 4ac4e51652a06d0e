from conformance.checks.validity import check_opset_validity


def test_opset_validity(subject, record_check):
    record_check(check_opset_validity(subject.artifact))
