from conformance.results import error_line, first_line


def test_error_line_keeps_the_first_line_and_survives_empty_messages():
    assert (
        error_line(RuntimeError("[ONNXRuntimeError] FAIL\n  at frame 1\n  at frame 2"))
        == "RuntimeError: [ONNXRuntimeError] FAIL"
    )
    assert error_line(ValueError()) == "ValueError: "
    assert first_line(OSError("  \n")) == ""
