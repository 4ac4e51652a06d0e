from hypothesis import given
from hypothesis import strategies as st

from conformance import inputs
from conformance.checks.batch import check_dynamic_batch, check_row_independence
from conformance.tolerances import tolerance


def test_dynamic_batch(subject, record_check):
    sizes = inputs.batch_sizes(subject.variant, subject.artifact.encoder)
    tol = tolerance("row_independence", **subject.context)
    record_check(check_dynamic_batch(subject.artifact, subject.variant, sizes, tol))


@given(data=st.data())
def test_dynamic_batch_drawn(subject, record_check, data):
    size = data.draw(inputs.batch_size_strategy(subject.variant, subject.artifact.encoder), label="batch")
    tol = tolerance("row_independence", **subject.context)
    record_check(check_dynamic_batch(subject.artifact, subject.variant, [size], tol))


def test_row_independence(subject, record_check):
    batch = max(inputs.batch_sizes(subject.variant, subject.artifact.encoder))
    tol = tolerance("row_independence", **subject.context)
    record_check(check_row_independence(subject.artifact, subject.variant, batch, tol))
