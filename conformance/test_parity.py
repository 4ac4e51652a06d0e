from conformance import inputs
from conformance.checks.known_answer import check_known_answer
from conformance.checks.parity import check_parity, check_zero_shot_agreement
from conformance.encoders import EncoderKind
from conformance.tolerances import tolerance


def test_parity(subject, record_check):
    tol = tolerance("parity", **subject.context)
    batch = min(4, inputs.max_batch(subject.variant, subject.artifact.encoder))
    record_check(check_parity(subject.artifact, subject.model, subject.variant, tol, batch=batch))


def test_zero_shot_agreement(pair, record_check):
    image, text = pair[EncoderKind.IMAGE], pair[EncoderKind.TEXT_SPLIT]
    n_images = min(4, inputs.max_batch(image.variant, EncoderKind.IMAGE))
    record_check(check_zero_shot_agreement(image.artifact, text.artifact, image.model, image.variant,
                                           n_images=n_images))


def test_known_answer(pair, record_check):
    image, text = pair[EncoderKind.IMAGE], pair[EncoderKind.TEXT_SPLIT]
    record_check(check_known_answer(image.artifact, text.artifact, image.model, image.variant,
                                    image.artifact.provenance))
