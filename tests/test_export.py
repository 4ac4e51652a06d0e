import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conformance.case import Case, Exporter, Target
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportError, ExportSpec
from conformance.weights import Provenance
from tests.support.helpers import TINY_RN, TINY_VIT, synthetic


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("exporter", list(Exporter))
@pytest.mark.parametrize("variant", [TINY_VIT, TINY_RN], ids=lambda v: v.name)
def test_export_leaves_the_source_model_bitwise_unchanged(variant, exporter, tmp_path):
    """A wrapper left in train mode flips CLIP too (the TorchScript exporter restores the mode it found), and
    the RN BatchNorm layers then update their running statistics during the export's forward pass."""
    loaded = synthetic(variant)
    before, training = _snapshot(loaded.model), loaded.model.training
    cache = ExportCache(tmp_path, progress=lambda m: None)
    for encoder in EncoderKind:
        cache.get(ExportSpec(Case(variant, encoder, exporter)), loaded.model, loaded.provenance)
    after = loaded.model.state_dict()
    assert loaded.model.training == training is False
    assert all(torch.equal(before[k], after[k]) for k in before), "export changed the model's weights"


def _counting_cache(root, messages):
    return ExportCache(root, progress=messages.append)


def test_second_run_reuses_the_cached_export(tmp_path):
    loaded, messages = synthetic(TINY_VIT), list[str]()
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))
    first = _counting_cache(tmp_path, messages).get(spec, loaded.model, loaded.provenance)
    second = _counting_cache(tmp_path, messages).get(spec, loaded.model, loaded.provenance)  # a new run
    assert sum(m.startswith("exporting") for m in messages) == 1
    assert first.folder == second.folder and first.files == second.files
    assert any("MB in" in m for m in messages)  # the progress line names size and duration


def test_cache_key_changes_with_everything_that_changes_the_output():
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))
    synthetic0 = Provenance.synthetic(0)
    keys = {
        spec.cache_key(synthetic0),
        spec.cache_key(Provenance.synthetic(1)),
        spec.cache_key(Provenance(kind="official", sha256="ab" * 32)),
        ExportSpec(Case(TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.TORCHSCRIPT)).cache_key(synthetic0),
        ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO)).cache_key(synthetic0),
        ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT, opset=18)).cache_key(synthetic0),
        ExportSpec(Case(TINY_RN, EncoderKind.IMAGE, Exporter.TORCHSCRIPT)).cache_key(synthetic0),
    }
    assert len(keys) == 7


_REFUSE_ORT = """
import sys, tempfile
from pathlib import Path
import onnxruntime
from conformance.axes import Target
from conformance.case import Case, Exporter
from conformance.encoders import EncoderKind
from conformance.export import ExportCache, ExportSpec
from tests.support.helpers import TINY_VIT, synthetic
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError(f"the export imported {name}")
def refused(*args, **kwargs):
    raise RuntimeError("the export opened an onnxruntime session")
onnxruntime.InferenceSession = onnxruntime.SessionOptions = refused  # the suite imports it; the export must not use it
for name in [m for m in sys.modules if m.split(".")[0] == "onnxruntime" and m != "onnxruntime"]:
    del sys.modules[name]  # its tools (quantisation, transformers' optimiser) would be imported again, and refused
sys.meta_path.insert(0, Refuse())
loaded, cache = synthetic(TINY_VIT), ExportCache(Path(tempfile.mkdtemp()), progress=lambda m: None)
for exporter in Exporter:
    for target in (Target.ONNX, Target.NPU_STATIC):
        case = Case(TINY_VIT, EncoderKind.TEXT_SPLIT, exporter).on(target, 1 if target == Target.NPU_STATIC else None)
        print(cache.get(ExportSpec(case), loaded.model, loaded.provenance).onnx_path.stat().st_size > 0)
"""


def test_an_export_from_the_model_never_imports_onnxruntime_so_its_key_leaves_its_version_out(repo_root):
    """The fp32 and static exports' cache key leaves onnxruntime's version out (CI's oldest-onnxruntime step reuses
    the exports): that holds only while exporting never imports it, which a process that refuses the import shows."""
    run = subprocess.run(
        [sys.executable, "-c", _REFUSE_ORT], cwd=repo_root, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and run.stdout.split() == ["True"] * 4, run.stderr[-3000:]
    onnx_spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))
    assert "onnxruntime" not in onnx_spec.versions()
    assert "onnxruntime" in ExportSpec(onnx_spec.case.on(Target.INT8_DYNAMIC)).versions()


def test_failed_export_leaves_nothing_a_later_run_trusts(tmp_path, monkeypatch):
    loaded = synthetic(TINY_VIT)
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))

    def crash(module, example, path, spec):
        path.write_bytes(b"half a model")
        raise RuntimeError("interrupted")

    monkeypatch.setattr("conformance.export.run_exporter", crash)
    with pytest.raises(ExportError, match="tiny-vit-image-torchscript-op20: torchscript export failed"):
        ExportCache(tmp_path, progress=lambda m: None).get(spec, loaded.model, loaded.provenance)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


def test_damaged_cache_entry_is_exported_again(tmp_path):
    loaded, messages = synthetic(TINY_VIT), list[str]()
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.DYNAMO))
    artifact = _counting_cache(tmp_path, messages).get(spec, loaded.model, loaded.provenance)
    data = artifact.folder / "model.onnx.data"
    os.truncate(data, data.stat().st_size // 2)
    again = _counting_cache(tmp_path, messages).get(spec, loaded.model, loaded.provenance)
    assert any(m.startswith("ignoring damaged cache entry") and "truncated" in m for m in messages)
    assert (again.folder / "model.onnx.data").stat().st_size == artifact.files["model.onnx.data"]


def test_rebuild_reexports_entries_older_than_the_session(tmp_path):
    loaded, messages = synthetic(TINY_VIT), list[str]()
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))
    _counting_cache(tmp_path, messages).get(spec, loaded.model, loaded.provenance)
    marker = next(tmp_path.rglob("artifact.json"))
    os.utime(marker, (0, 0))
    rebuilt = ExportCache(tmp_path, progress=messages.append, rebuild_older_than=1.0)
    rebuilt.get(spec, loaded.model, loaded.provenance)
    assert sum(m.startswith("exporting") for m in messages) == 2
    assert json.loads(marker.read_text())["case"]["exporter"] == "torchscript"


def test_dynamo_export_writes_external_data_and_records_it(tiny_cache):
    from tests.support.helpers import good

    artifact = good(tiny_cache, TINY_VIT, EncoderKind.TEXT_SPLIT, Exporter.DYNAMO)
    assert set(artifact.files) == {"model.onnx", "model.onnx.data", "text_projection_64_96.npy"}
    assert artifact.token_dtype == "int32"
    artifact.verify_sizes()


def _export_in_another_process(root: str) -> None:
    loaded = synthetic(TINY_VIT)
    spec = ExportSpec(Case(TINY_VIT, EncoderKind.IMAGE, Exporter.TORCHSCRIPT))
    ExportCache(Path(root), progress=lambda m: None).get(spec, loaded.model, loaded.provenance)


def test_concurrent_processes_export_a_key_once(tmp_path):
    """What keeps pytest-xdist workers (and two CI jobs sharing a cache) from exporting twice."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_export_in_another_process, args=(str(tmp_path),)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert len((tmp_path / "exports.log").read_text().splitlines()) == 1
