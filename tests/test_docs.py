"""The docs: README.md a front page, the generated tables as the code gives them now, every relative link whole.

A generated block that differs from what `python -m fixtures.docs` writes fails here, and so does a check or an
option without its text in conformance/checks.toml or fixtures/options.toml (or text for one that is gone)."""

import copy
import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from conformance.case import Target
from conformance.registry import CHECKS
from fixtures import docs

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(page: Path) -> str:
    """The page without its fenced code: a `#` there is a shell comment, a bracket a subscript."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but hyphens dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(page).splitlines() if re.match(r"#{1,6} ", line)}


def _fresh() -> docs.Sources:
    """The sources as the code gives them, each a copy a test may alter."""
    src = docs.Sources()
    return dataclasses.replace(src, data=copy.deepcopy(src.data), notes=dict(src.notes))


def test_the_generated_blocks_are_what_the_code_gives_now():
    stale = docs.stale()
    assert not stale, f"stale: {', '.join(stale)}; run `{docs.COMMAND}` and commit what it writes"


def test_a_changed_registry_row_or_its_text_makes_its_block_stale():
    """The comparison can fail: each source, altered, makes the block it feeds differ from the page."""
    src = _fresh()
    src.data["parity"]["fails"] += "; and one more thing"
    assert docs.stale(src=src) == ["docs/checks.md (block failures)"]
    src = _fresh()
    src.data["token_dtype"]["does"] = "something else"
    assert docs.stale(src=src) == ["README.md (block checks)"]
    fusions = next(i for i, check in enumerate(CHECKS) if check.name == "fusions")
    moved = dataclasses.replace(CHECKS[fusions], targets=frozenset({Target.ORT_OPT, Target.FP16}))
    src = dataclasses.replace(_fresh(), checks=(*CHECKS[:fusions], moved, *CHECKS[fusions + 1 :]))
    assert docs.stale(src=src) == ["docs/checks.md (block where)"]


def test_a_changed_option_or_its_meaning_makes_its_block_stale():
    src = _fresh()
    src.notes["--seed"] = "another meaning"
    assert docs.stale(src=src) == ["docs/options.md (block options)"]
    options = [docs.Option(o.flag, {**o.attrs, "help": "changed"}) if o.flag == "--variant" else o for o in src.options]
    assert docs.stale(src=dataclasses.replace(src, notes=_fresh().notes, options=options)) == [
        "README.md (block options)"
    ]


def test_a_check_renamed_in_the_registry_but_not_in_its_data_is_an_error_naming_both():
    renamed = (dataclasses.replace(CHECKS[0], name="opset_validity_v2"), *CHECKS[1:])
    with pytest.raises(docs.DocsError) as raised:
        docs.stale(src=dataclasses.replace(_fresh(), checks=renamed))
    assert "opset_validity_v2: a registry check without a table" in str(raised.value)
    assert "opset_validity: a table in checks.toml that names no registry check" in str(raised.value)


def test_an_option_without_its_meaning_is_an_error():
    src = _fresh()
    del src.notes["--layout"]
    with pytest.raises(docs.DocsError, match="--layout"):
        docs.options_table(src)


def test_the_generator_rewrites_a_stale_block_and_refuses_a_page_without_its_markers(tmp_path):
    for page in docs.BLOCKS:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / page, tmp_path / page)
    page = tmp_path / "docs" / "options.md"
    page.write_text(page.read_text(encoding="utf-8").replace("`--seed N`", "`--seed SEED`"), encoding="utf-8")
    assert docs.stale(tmp_path) == ["docs/options.md (block options)"]
    assert docs.write(tmp_path) == ["docs/options.md"]
    assert docs.stale(tmp_path) == [] and page.read_text(encoding="utf-8") == (REPO / "docs/options.md").read_text()
    page.write_text(re.sub(r"<!-- end generated: options -->", "", page.read_text(encoding="utf-8")))
    with pytest.raises(docs.DocsError, match=r"docs/options\.md: generated blocks"):
        docs.stale(tmp_path)


def test_checks_toml_names_the_registry_s_checks_exactly_each_in_one_row():
    data = docs.Sources().data
    assert set(data) == {check.name for check in CHECKS}
    assert docs.problems(CHECKS, data) == []


def test_options_toml_names_the_option_group_exactly():
    assert set(docs.Sources().notes) == {option.flag for option in docs.suite_options()}
    assert set(docs.COMMON) <= set(docs.Sources().notes) and len(docs.COMMON) == 10


def test_each_module_a_check_row_names_exists():
    modules = {
        path.split(" ")[0]
        for entry in docs.Sources().data.values()
        for path in re.findall(r"`([^`]+)`", entry.get("module", ""))
    }
    assert modules and not [m for m in modules if not (REPO / "conformance" / m).is_file()]


def test_the_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_each_generated_docs_page_says_at_its_top_how_it_is_made():
    for page in docs.BLOCKS:
        if page.startswith("docs/"):
            assert docs.COMMAND in "\n".join((REPO / page).read_text(encoding="utf-8").splitlines()[:6]), page


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_prose(page)):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.is_file():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and anchor not in _anchors(file):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken
