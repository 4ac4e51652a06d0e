"""Every command on the README is one `.ci/run` runs (issue 27): the front page cannot promise what CI never proves.

A README command matches a `.ci/run` command when its words appear in it in order, path values standing for any
path (`--out dist/vitb32` and `--out "$scratch/bundle"` are the same command), and what `.ci/run` adds is only
where output goes or how much is printed or selected (ALLOWED_EXTRAS). One substitution is declared, with why.
"""

import re
import shlex
from pathlib import Path

from fixtures.options import PATH_OPTIONS

REPO = Path(__file__).resolve().parent.parent
PATHS = (*PATH_OPTIONS, "--out", "--pair")  # --pair: two folders, IMAGE_DIR,TEXT_DIR
# Options CI may add to a README command: each changes where output goes, what is printed, or narrows a long run;
# none changes what a check judges.
ALLOWED_EXTRAS = (
    r"-q",  # pip: quieter
    r"--progress-bar=off",  # pip: no progress bars in CI's log
    r"-p=no:cacheprovider",  # pytest: no .pytest_cache in the checkout
    r"--durations=\d+",  # pytest: the slowest printed
    r"--report-dir=PATH",  # where the report goes
)
# Only beside a README command that already validates a folder: more folders in the same run (a --pair is two).
MORE_FOLDERS = ("--artifacts=PATH", "--pair=PATH")
# The narrowings CI may add (-k), each named with why; any other -k makes it another command.
NARROWINGS = {
    "-k=not test_latency or (transformersjs and not combined)": "exports made elsewhere: latency on transformers.js's "
    "split graphs only; the others' graphs are fed by the same input code as every other check (.ci/run's comment "
    "on that step)",
}
# README word -> the words CI runs instead, and why.
SUBSTITUTES = {
    "--weights=PATH": (
        "--synthetic-reference",
        "CI has no official checkpoint: the folders there are made from the suite's synthetic weights",
    ),
}
_JOINED = ("-k", "-p", "--progress-bar")  # options whose value is the next word


def _words(command: str) -> list[str]:
    raw = shlex.split(command, comments=True)
    words: list[str] = []
    i = 0
    while i < len(raw):
        word = raw[i]
        if (word in PATHS or word in _JOINED) and i + 1 < len(raw):
            word, i = f"{word}={raw[i + 1]}", i + 1
        name, eq, _ = word.partition("=")
        words.append(f"{name}=PATH" if eq and name in PATHS else word)
        i += 1
    return words


def _commands(lines: list[str]) -> list[list[str]]:
    """The `python3 -m ...` commands on these lines (continuations joined, `&&` chains split)."""
    text = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        for part in re.split(r"&&|;", line):
            words = _words(part) if "python3 -m" in part else []
            if words[:2] == ["python3", "-m"]:
                found.append(words)
    return found


def readme_commands(text: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return _commands([line for block in blocks for line in block.splitlines()])


def ci_commands(text: str) -> list[list[str]]:
    return _commands([line for line in text.splitlines() if not line.lstrip().startswith("#")])


def runs(readme: list[str], ci: list[str]) -> bool:
    wanted = [w for word in readme for w in ([SUBSTITUTES[word][0]] if word in SUBSTITUTES else [word])]

    def extra(word: str) -> bool:
        if word in MORE_FOLDERS:
            return MORE_FOLDERS[0] in readme
        return word in NARROWINGS or any(re.fullmatch(allowed, word) for allowed in ALLOWED_EXTRAS)

    left = list(ci)
    for word in wanted:  # in order; whatever CI has before a README word must be an allowed extra
        while left and left[0] != word:
            if not extra(left.pop(0)):
                return False
        if not left:
            return False
        left.pop(0)
    return all(extra(w) for w in left)


def not_run(readme_text: str, ci_text: str) -> list[str]:
    ci = ci_commands(ci_text)
    return [" ".join(c) for c in readme_commands(readme_text) if not any(runs(c, r) for r in ci)]


def test_every_readme_command_is_one_ci_runs():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", readme, flags=re.S)
    assert {kind for kind, _ in blocks} == {"bash"}, "a command block in another fence would go unchecked"
    lines = [line for _, block in blocks for line in block.splitlines() if line.split("#")[0].strip()]
    assert all(_commands([line]) for line in lines), "a README line with no `python3 -m` command goes unchecked"
    assert len(readme_commands(readme)) >= 8  # the two set-up lines (five commands) and the three jobs
    assert not_run(readme, ci) == []


def test_a_readme_command_ci_does_not_run_is_named():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    changed = readme.replace(
        "python3 -m pytest --artifacts=dist/vitb32", "python3 -m pytest --artifacts=dist/vitb32 --target all"
    )
    assert not_run(changed, ci) == ["python3 -m pytest --artifacts=PATH --target all"]
    assert not_run(readme.replace("--variant ViT-B/32 --out", "--variant ViT-L/14 --out"), ci)
    # CI adding something that changes the judgement (not an allowed extra) is no longer the README's command
    assert not_run(
        readme,
        ci.replace("python3 -m pytest --variant ViT-B/32\n", "python3 -m pytest --variant ViT-B/32 --latency=none\n"),
    )


def test_paths_stand_for_any_path_and_extras_are_only_the_allowed_ones():
    (command,) = readme_commands("```bash\npython3 -m conformance export --variant ViT-B/32 --out dist/x  # c\n```")
    assert command == ["python3", "-m", "conformance", "export", "--variant", "ViT-B/32", "--out=PATH"]
    assert runs(command, _words('python3 -m conformance export --variant ViT-B/32 --out "$scratch/bundle"'))
    assert not runs(command, _words("python3 -m conformance export --variant ViT-B/32 --target fp16 --out x"))
    gate = _words("python3 -m pytest --variant ViT-B/32")
    assert not runs(gate, _words('python3 -m pytest --variant ViT-B/32 -k "not parity"'))  # an undeclared narrowing
    assert not runs(gate, _words("python3 -m pytest --artifacts=x --variant ViT-B/32"))  # checks a folder instead
    validate = _words("python3 -m pytest --artifacts=dist/x")
    assert runs(validate, _words('python3 -m pytest --artifacts="$a" --artifacts="$b" --report-dir=r'))
    assert runs(
        _words("python3 -m pytest tests -m timing"),
        _words("python3 -m pytest tests -p no:cacheprovider -m timing --durations=10"),
    )
