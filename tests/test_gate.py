"""The gate's own promises: the benchmarks stand apart from the tests, and mypy sees every package."""

import tomllib

from tests.test_layers import LAYERS, ROOT, imported


def test_bench_imports_no_test_module():
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "bench").rglob("*.py"))
        for name, line in imported(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert not found, "bench/ must not import tests/ (move what it needs into bench/):\n" + "\n".join(found)


def test_mypy_checks_every_application_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(config["files"]) == set().union(*LAYERS)
