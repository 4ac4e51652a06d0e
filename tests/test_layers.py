"""The house rules: modules import only their own floor or lower, no cycles, no module over 300 lines."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Lowest first. A module may import modules of its own floor or a lower one, never a higher one: the library
# never imports the checks, the registry, the report, the CLI or the pytest plugin.
FLOORS = (
    (
        "conformance",
        "conformance.variants",
        "conformance.axes",
        "conformance.atomic",
        "conformance.versions",
        "conformance.numerics",
        "conformance.results",
        "conformance.clipcompat",
        "conformance.tolerances",
        "conformance.toolchains",
    ),
    ("conformance.encoders", "conformance.tokenizer", "conformance.architecture", "conformance.synthetic"),
    ("conformance.case", "conformance.weights", "conformance.layouts", "conformance.producers", "conformance.hostcode"),
    (
        "conformance.artifact",
        "conformance.inputs",
        "conformance.graph",
        "conformance.profiles",
        "conformance.sessions",
        "conformance.batching",
        "conformance.value_inputs",
    ),
    (
        "conformance.runtime",
        "conformance.openvino_runtime",
        "conformance.compile",
        "conformance.export",
        "conformance.outputs",
        "conformance.roofline",
        "conformance.subject",
        "conformance.bundle",
        "conformance.folders",
        "conformance.emulation",
    ),
    ("conformance.checks",),
    ("conformance.registry",),
    ("conformance.report",),
    ("conformance.cli", "conformance.parsing", "conformance.__main__", "conformance.test_checks", "fixtures"),
)
MAX_LINES = 300


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _floor(module: str) -> int:
    """The floor of the package holding the module (a module of conformance/ is its own package)."""
    matches = [
        (len(name), number)
        for number, names in enumerate(FLOORS)
        for name in names
        if module == name or module.startswith(f"{name}.")
    ]
    assert matches, f"{module} is on no floor: add it to tests/test_layers.py"
    return max(matches)[1]


def _sources() -> list[Path]:
    return sorted(p for folder in ("conformance", "fixtures") for p in (REPO / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    modules = {_module(p) for p in _sources()}
    return {name for name in found if name in modules}


def test_a_floor_names_packages_not_the_modules_inside_them():
    """A package lives on one floor whole: a module that must sit higher than its package belongs elsewhere."""
    nested = [name for names in FLOORS for name in names if name.count(".") > 1 or name.startswith("fixtures.")]
    assert not nested, nested


def test_no_module_imports_a_higher_floor():
    upward = [
        f"{_module(p)} (floor {_floor(_module(p))}) imports {name} (floor {_floor(name)})"
        for p in _sources()
        for name in _imports(p)
        if _floor(name) > _floor(_module(p))
    ]
    assert not upward, upward


def test_no_import_cycles():
    graph = {_module(p): _imports(p) - {_module(p)} for p in _sources()}

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if node in trail:
            raise AssertionError(" -> ".join((*trail[trail.index(node) :], node)))
        for name in graph.get(node, ()):
            visit(name, (*trail, node))

    for module in graph:
        visit(module, ())


def test_no_module_is_over_300_lines():
    paths = [
        *_sources(),
        *(REPO / "tests").glob("*.py"),
        *(REPO / "tests" / "support").glob("*.py"),
        *(REPO / "benchmarks").glob("*.py"),
    ]
    long = {str(p.relative_to(REPO)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_self_test_helpers_live_apart_from_the_test_modules():
    """tests/ holds test modules (and conftest.py); what they are made with is in tests/support/, and no test module
    imports another."""
    tests = REPO / "tests"
    strays = sorted(p.name for p in tests.glob("*.py") if not p.name.startswith("test_"))
    assert strays == ["__init__.py", "conftest.py"], strays
    cross = {
        p.name: sorted(name for name in _imported_names(p) if name.startswith("tests.test_"))
        for p in tests.glob("test_*.py")
    }
    assert not {k: v for k, v in cross.items() if v}, cross


def _imported_names(path: Path) -> set[str]:
    """Every module the file imports, by its full name: `from tests import test_x` and `from .test_x import y`
    (relative to tests/) included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(filter(None, ["tests" if node.level else None, node.module]))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found
