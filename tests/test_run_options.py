"""The run's options: each value parsed where pytest parses it (conformance/parsing.py), refused before torch is
imported, and the whole set frozen once per run (fixtures/runoptions.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import parsing

# One mistyped value per option with a parser, and what the refusal must name.
MISTYPED = {
    "--variant=ViT-B/99": "unknown variant 'ViT-B/99'; valid names: RN50",
    "--exporter=onnx": "'onnx' unknown; choose from ['torchscript', 'dynamo']",
    "--target=tpu": "'tpu' unknown; choose from",
    "--require-target=q4": "'q4' unknown; choose from",  # a 4-bit target is other tools' only
    "--token-dtype=int16": "'int16': choose one of ['int32', 'int64']",
    "--static-batch=0": "positive integers like 1,8, not '0'",
    "--latency-batches=1,x": "positive integers like 1,8, not '1,x'",
    "--batch-max=0": "give a batch size from 1 to 1024",
    "--latency-max-ratio=nan": "give a finite number above 0",
    "--latency-tolerance=-1": "give a finite number above 0",
    "--deploy-isa=avx512vnni": "['avx512vnni'] unknown; choose from",
    "--emulate-cpu=pentium": "'pentium' is not in conformance/emulation.toml",
    "--pair=only-one-folder": "give two folders, IMAGE_DIR,TEXT_DIR",
}

# pytest.main on each, in one process, then whether torch was ever imported: the answer comes from the parser
# alone, in about a second, not after the plugin's imports.
_PROBE = """
import json, sys, contextlib, io
import pytest
found = {}
for option in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = pytest.main([option, "-p", "no:cacheprovider", "--collect-only", "-q"])
    found[option] = [int(code), err.getvalue()]
before = "torch" in sys.modules
with contextlib.redirect_stderr(io.StringIO()):  # the control: a good run does load the plugin, and torch with it
    good = pytest.main(["--variant=tiny-vit", "-p", "no:cacheprovider", "--collect-only", "-q"])
print(json.dumps({"runs": found, "torch": before, "good": [int(good), "torch" in sys.modules]}))
"""


def test_a_mistyped_value_of_each_option_is_refused_by_its_parser_before_torch_is_imported(repo_root):
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(MISTYPED))],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    doc = json.loads(probe.stdout.strip().splitlines()[-1])
    for option, wanted in MISTYPED.items():
        code, err = doc["runs"][option]
        assert code == 4 and f"argument {option.split('=')[0]}: " in err and wanted in err, (option, err[-800:])
        assert "Traceback" not in err
    assert doc["torch"] is False, "a usage error imported torch: some option is still checked after the plugin loads"
    assert doc["good"] == [0, True]  # the probe can see torch: a good run imports it


def test_every_parsed_option_has_a_mistyped_case_here():
    """A parser added to an option without a case above would be untested; a parser written anywhere but
    conformance/parsing.py (a lambda in options.py) would not be checked before torch."""
    from fixtures.docs import suite_options

    typed = {o.flag: o.attrs["type"] for o in suite_options() if "type" in o.attrs}
    plain = {flag for flag, kind in typed.items() if kind in (int, float, Path)}
    parsed = {flag for flag, kind in typed.items() if getattr(kind, "__module__", "") == parsing.__name__}
    assert set(typed) == plain | parsed, set(typed) - plain - parsed
    assert parsed == {option.split("=")[0] for option in MISTYPED}


@pytest.mark.parametrize(
    ("parse", "raw", "value"),
    [
        (parsing.variant_name, "all", "all"),
        (parsing.variant_name, "tiny-vit", "tiny-vit"),
        (parsing.target_name, "all", "all"),
        (parsing.batch_sizes, "8,1,8", (8, 1)),
        (parsing.batch_max, "64", 64),
        (parsing.above_zero, "0.25", 0.25),
        (parsing.cpu_flags, "avx512_vnni,amx_int8", frozenset({"avx512_vnni", "amx_int8"})),
        (parsing.emulated_cpu, "none", "none"),
        (parsing.emulated_cpu, "zen3", "zen3"),
    ],
)
def test_a_good_value_parses_to_what_the_run_uses(parse, raw, value):
    assert parse(raw) == value


_OPTIONS_OF = """
import dataclasses, json, sys
import pytest
from fixtures.session import SESSION

def plain(value):
    if isinstance(value, (tuple, list, frozenset)):
        return sorted(map(plain, value)) if isinstance(value, frozenset) else [plain(v) for v in value]
    return getattr(value, "name", value) if not isinstance(value, (str, int, bool, type(None))) else value

class Probe:
    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config):
        options = config.stash[SESSION].options
        fields = {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}
        print("RUNOPTIONS " + json.dumps(fields))

pytest.main([*sys.argv[1:], "-p", "no:cacheprovider", "--collect-only", "-q"], plugins=[Probe()])
"""


def test_run_options_are_frozen_and_rknn_brings_the_graphs_it_is_built_from(repo_root):
    from fixtures.runoptions import RunOptions

    assert RunOptions.__dataclass_params__.frozen  # type: ignore[attr-defined]
    args = ["--target=rknn", "--require-target=npu-static", "--emulate-cpu=none", "--deploy-isa=avx512_vnni"]
    probe = subprocess.run(
        [sys.executable, "-c", _OPTIONS_OF, *args], cwd=repo_root, capture_output=True, text=True, timeout=300
    )
    line = [x for x in probe.stdout.splitlines() if x.startswith("RUNOPTIONS ")]
    assert line, probe.stdout[-2000:] + probe.stderr[-2000:]
    options = json.loads(line[0].removeprefix("RUNOPTIONS "))
    assert options["targets"] == ["npu-static", "rknn"] and options["required_targets"] == ["npu-static"]
    assert options["emulate_cpus"] == [] and options["emulation_off"] is True
    assert options["deploy_isa"] == ["avx512_vnni"] and options["latency_batches"] == [1, 8]
    assert options["rknn_platform"] == "rk3588" and options["variants"] == ["ViT-B/32"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--hf-weights=/x", "--weights=/y"], "--hf-weights and --weights both name the weights: give one"),
        (["--require-target=fp16"], "--require-target fp16: also select it with --target"),
        (["--emulate-cpu=none", "--emulate-cpu=zen3"], "--emulate-cpu none and zen3: give one"),
    ],
)
def test_options_that_contradict_each_other_are_a_usage_error(repo_root, options, message):
    from tests.support.helpers import pytest_run

    run = pytest_run(repo_root, *options, "--collect-only", "-q")
    assert run.returncode == 4 and message in run.stderr, run.stderr[-2000:]


@pytest.mark.parametrize(
    ("option", "value", "parse"),
    [("--deploy-isa", "avx512vnni", parsing.cpu_flags), ("--deploy-cpu", "pentium", parsing.deploy_cpu)],
)
def test_export_refuses_a_cpu_flag_or_cpu_in_the_words_pytest_does(tmp_path, capsys, option, value, parse):
    """`python -m conformance export` reads its CPU flags and CPUs with the parsers of pytest's --deploy-isa and
    --emulate-cpu: one list of names, one refusal, nothing written, and before any checkpoint is read (a missing
    one here, which would otherwise be exit status 3)."""
    import argparse

    from conformance import cli

    out = tmp_path / "bundle"
    argv = ["export", "--variant", "tiny-vit", "--target", "int8-dynamic", "--out", str(out), option, value]
    argv += ["--weights", str(tmp_path / "never-read.pt")]
    assert cli.main([*argv, "--export-cache", str(tmp_path / "c")]) == cli.USAGE
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse(value)
    err = capsys.readouterr().err
    assert f"error: {option} " in err and str(refused.value) in err and "never-read" not in err, err
    assert not out.exists()
    assert not (tmp_path / "c").exists()  # refused before anything was exported
    good, parsed = ("fma,avx2,fma", frozenset({"fma", "avx2"})) if option == "--deploy-isa" else ("zen3", "zen3")
    assert parse(good) == parsed  # and a good value is taken
