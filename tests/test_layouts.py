"""Layouts as data: detection, the feeds a layout builds, and its contract, without any producer installed."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import layouts
from conformance.encoders import EncoderKind
from conformance.folders import identify
from conformance.inputs import EDGE_TEXTS, tokens
from conformance.layouts import EOT_TOKEN, NoLayout, SeveralLayouts
from tests.support.helpers import TINY_VIT


def _touch(folder, *names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder


def test_every_layout_file_loads_with_a_contract_for_each_graph():
    found = layouts.layouts()
    assert {"optimum", "immich"} <= set(found)
    for layout in found.values():
        assert layout.graphs and all(g.file in layout.contract for g in layout.graphs)
        assert all(reason.strip() for reason in layout.skips.values()), layout.name


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["model.onnx", "config.json"], "optimum"),
        (["visual/model.onnx", "textual/model.onnx"], "immich"),
        (["manifest.json", "image.onnx"], "suite"),
    ],
)
def test_a_folder_is_detected_by_its_files(tmp_path, files, expected):
    assert identify.detect(_touch(tmp_path, *files)) == expected


def test_a_folder_that_fits_nothing_says_what_was_looked_for(tmp_path):
    with pytest.raises(NoLayout) as raised:
        identify.detect(_touch(tmp_path, "weights.bin"))
    message = str(raised.value)
    assert "manifest.json is missing" in message
    assert all(f"{name}:" in message for name in layouts.names())
    assert "model.onnx, config.json" in message and "visual/model.onnx, textual/model.onnx" in message


def test_a_folder_that_fits_several_layouts_asks_for_layout(tmp_path):
    _touch(tmp_path, "model.onnx", "config.json", "visual/model.onnx", "textual/model.onnx")
    with pytest.raises(SeveralLayouts, match=r"fits several layouts \(immich, optimum\).*--layout"):
        identify.detect(tmp_path)
    assert identify.detect(tmp_path, "immich") == "immich"


def test_a_forced_layout_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(NoLayout, match=r"does not fit --layout immich: it needs visual/model\.onnx"):
        identify.detect(_touch(tmp_path, "model.onnx", "config.json"), "immich")


def test_hf_feeds_pad_where_clip_pads_and_mask_through_the_last_token():
    binding = layouts.get("optimum").binding(EncoderKind.TEXT_FULL)
    ids = tokens(EDGE_TEXTS["eot-in-text"] + EDGE_TEXTS["full-context"] + EDGE_TEXTS["empty"], TINY_VIT)
    feeds = binding.feeds(ids, TINY_VIT.image_resolution)
    assert set(feeds) == {"input_ids", "attention_mask", "pixel_values"}
    for row, host, mask in zip(ids, feeds["input_ids"], feeds["attention_mask"], strict=True):
        last = int(np.flatnonzero(row)[-1])
        assert np.array_equal(host[: last + 1], row[: last + 1])  # the whole text, text after a first EOT too
        assert (host[last + 1 :] == EOT_TOKEN).all()  # HF's openai config pads with <|endoftext|>
        assert mask[: last + 1].all() and not mask[last + 1 :].any()
    first, last = int(np.argmax(ids[0] == EOT_TOKEN)), int(np.flatnonzero(ids[0])[-1])
    assert first < last and feeds["attention_mask"][0, last]  # "a photo of a dog<|endoftext|> and a cat"
    assert feeds["pixel_values"].shape == (1, 3, TINY_VIT.image_resolution, TINY_VIT.image_resolution)


def test_immich_feeds_only_its_own_input_padded_as_its_server_pads():
    binding = layouts.get("immich").binding(EncoderKind.TEXT_FULL)
    ids = tokens(["a photo of a dog"], TINY_VIT)
    feeds = binding.feeds(ids, TINY_VIT.image_resolution)
    last = int(np.flatnonzero(ids[0])[-1])
    assert list(feeds) == ["text"] and np.array_equal(feeds["text"][0, : last + 1], ids[0, : last + 1])
    assert (feeds["text"][0, last + 1 :] == EOT_TOKEN).all()  # the tokenizer's pad token, not clip's 0


def test_every_skip_names_a_check_of_the_registry():
    """A typo in a layout's [skips] would silently turn a skip off: every key must be a registry name."""
    from conformance.registry import BY_NAME

    for layout in layouts.layouts().values():
        assert set(layout.skips) <= set(BY_NAME), (layout.name, set(layout.skips) - set(BY_NAME))


def test_a_malformed_layout_file_is_refused_naming_it():
    raw = {
        "producer": "x", "exporter": "dynamo", "detect": ["m.onnx"],
        "text": {"dtype": "int64", "pad_token": 0, "mask": "none", "pooling": "argmax"},
        "graphs": [{"encoder": "text-full", "file": "m.onnx", "output": "y", "normalized": False,
                    "inputs": {"tokens": "ids", "mask": "attention_mask"}}],
        "contract": {"m.onnx": {}},
    }  # fmt: skip
    with pytest.raises(layouts.LayoutError, match="a mask just when"):
        layouts._parse("broken", raw)
    del raw["text"]
    with pytest.raises(layouts.LayoutError, match=r"broken\.toml is malformed"):
        layouts._parse("broken", raw)


@pytest.mark.parametrize(("text", "graph", "expected"), [
    ({"context": 1}, {}, "context 1: from 2"),  # no room for the start and end tokens
    ({"context": 78}, {}, "context 78: from 2"),
    ({"context": 20}, {"encoder": "text-split"}, "not to hidden states"),  # the host gathers from all 77
])  # fmt: skip
def test_a_host_context_that_cannot_hold_is_refused(text, graph, expected):
    raw = {
        "producer": "x", "exporter": "dynamo", "detect": ["m.onnx"],
        "text": {"dtype": "int64", "pad_token": 0, "mask": "none", "pooling": "argmax", **text},
        "graphs": [{"encoder": "text-full", "file": "m.onnx", "output": "y", "normalized": False,
                    "inputs": {"tokens": "ids"}, **graph}],
        "contract": {"m.onnx": {}},
    }  # fmt: skip
    with pytest.raises(layouts.LayoutError, match=expected):
        layouts._parse("broken", raw)


def test_a_compiled_sibling_of_another_tool_reports_its_speed_up_without_gating_it():
    """The producer chose its quantisation (transformers.js: uint8 weights for a graph with a Conv), not this suite's
    recipe whose speed-up the gate was measured on: reported, not gated, on every CPU."""
    from conformance.case import Case, Exporter, Target
    from conformance.encoders import EncoderKind
    from conformance.variants import get
    from fixtures.latency import LatencySettings

    case = Case(get("ViT-B/32"), EncoderKind.IMAGE, Exporter.TORCHSCRIPT, 18, layout="transformersjs")
    gates = LatencySettings("quick", 0.10).gates(case.on(Target.INT8_DYNAMIC), 8, 2)
    assert gates.speedup is None and "another tool's compiled sibling" in str(gates.speedup_skip)
    assert LatencySettings("quick", 0.10).gates(case, 8, 2).speedup is None  # an fp32 graph has no speed-up gate
