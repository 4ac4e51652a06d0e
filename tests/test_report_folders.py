"""Another tool's graphs in the report: a row per folder and sibling, in the check matrix and the compile table."""

from __future__ import annotations

from conformance.report.compiled import compile_rows
from conformance.report.html import matrix


def test_siblings_of_one_target_and_folders_of_one_layout_get_rows_of_their_own():
    """transformers.js's `_quantized` and `_uint8` are both int8-dynamic: two graphs, two rows, in the matrix and the
    compile table alike (one's failure never shares a cell with the other's pass)."""
    base = {"variant": "ViT-B/32", "exporter": "torchscript", "opset": 18, "target": "int8-dynamic", "check": "parity"}
    tests = [
        {**base, "layout": "transformersjs", "bundle": "tjs", "sibling": "_quantized", "outcome": "passed"},
        {**base, "layout": "transformersjs", "bundle": "tjs", "sibling": "_uint8", "outcome": "failed"},
    ]
    _, rows = matrix(tests)
    labels = ["int8-dynamic [tjs _quantized]", "int8-dynamic [tjs _uint8]"]
    assert [key[1] for key, _ in rows] == labels
    assert sorted(row.target for row in compile_rows(tests)) == labels
