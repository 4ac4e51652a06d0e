from conformance.checks.latency import check_latency_of
from conformance.runtime import threads
from fixtures.latency import benchmark_timer


def test_latency(subject, latency_batch, latency, benchmark, record_check):
    plan = latency.plan(latency_batch)
    benchmark.group = f"{subject.variant.slug}-{subject.artifact.encoder}-batch{plan.batch}"
    result = check_latency_of(subject.artifact, subject.model, subject.variant, plan,
                              latency.gate(subject.artifact, plan.batch), benchmark_timer(benchmark),
                              baseline=latency.baseline_for(subject.artifact, plan.batch, threads()),
                              baseline_tolerance=latency.tolerance)
    benchmark.extra_info.update(result.figures)
    record_check(result)
