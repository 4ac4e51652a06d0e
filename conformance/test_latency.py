from conformance.checks.latency import check_latency_of
from fixtures.latency import benchmark_timer


def test_latency(subject, latency_batch, latency, benchmark, record_check, request):
    plan = latency.plan(latency_batch)
    benchmark.group = f"{subject.variant.slug}-{subject.artifact.encoder}-batch{plan.batch}"
    result = check_latency_of(subject.artifact, subject.model, subject.variant, plan, benchmark_timer(benchmark),
                              max_ratio=latency.max_ratio, baseline_p50_ms=latency.baseline_for(request.node.nodeid),
                              baseline_tolerance=latency.tolerance)
    benchmark.extra_info.update(result.figures)
    record_check(result)
