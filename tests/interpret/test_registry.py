"""The registry is the one place a method is described: parameters declared once, passes, shared runs.

Read over ``METHODS`` when the tests are collected, so a newly registered method is checked
without touching this file.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import interpret  # noqa: F401  (registers every method)
from interpret import METHODS, explain
from interpret.explanation import MethodResult
from interpret.registry import SIGNATURE, Method, Param, SharedPass

ROOT = Path(__file__).resolve().parents[2]
COUNT_WORDS = ("sample", "steps", "channels")
SHAPES = [(28, 28, 1), (224, 224, 3), (299, 299, 3)]


def keyword_arguments(fn) -> dict[str, inspect.Parameter]:
    return {
        p.name: p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


# ---- parameters: declared once ----------------------------------------------------------
@pytest.mark.parametrize("name", list(METHODS))
def test_every_param_is_a_keyword_of_the_method_function_with_the_same_default(name):
    method = METHODS[name]
    arguments = keyword_arguments(method.fn)
    for p in method.params:
        assert p.name in arguments, f"{name}: Param {p.name!r} is not an argument of {method.fn.__name__}()"
        default = arguments[p.name].default
        assert default is not inspect.Parameter.empty, f"{name}: {method.fn.__name__}({p.name}) has no default"
        assert p.default == default and type(p.default) is type(default), (
            f"{name}.{p.name}: Param default {p.default!r} but {method.fn.__name__}() default {default!r}"
        )
        assert p.default is not SIGNATURE
    assert method.defaults == {p.name: p.default for p in method.params}


def test_a_param_takes_its_default_from_the_signature_or_must_agree_with_it():
    def fn(m, x, target, size: int = 3, mode: str = "a", **_):
        return MethodResult(np.zeros((2, 2)))

    method = Method("demo", "Demo", fn, "Nobody 2024", "gradient", params=(Param("size", "int", min=1, max=9),))
    assert method.params[0].default == 3 and method.defaults == {"size": 3}
    assert method.check_params({}) == {"size": 3}
    Method("demo", "Demo", fn, "Nobody 2024", "gradient", params=(Param("mode", "choice", "a", choices=("a", "b")),))
    with pytest.raises(TypeError, match="declare it once"):
        Method("demo", "Demo", fn, "Nobody 2024", "gradient", params=(Param("size", "int", 4),))
    with pytest.raises(TypeError, match="no keyword argument"):
        Method("demo", "Demo", fn, "Nobody 2024", "gradient", params=(Param("missing", "int"),))


# ---- passes ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(METHODS))
def test_passes_is_a_positive_whole_number_for_the_defaults(name, shape):
    method = METHODS[name]
    n = method.passes(method.check_params({}), shape)
    assert isinstance(n, int) and not isinstance(n, bool) and n >= 1
    assert method.pass_count({}, shape) == n
    assert isinstance(method.backward, bool)


@pytest.mark.parametrize("name", list(METHODS))
def test_passes_grow_with_the_sample_count_params(name):
    method = METHODS[name]
    counts = [p for p in method.params if p.kind == "int" and any(w in p.name for w in COUNT_WORDS)]
    for p in counts:
        low = int(max(p.min or 1, 1))
        high = int(min(p.max, max(2 * p.default, low + 1)))
        few, many = method.pass_count({p.name: low}, (224, 224, 3)), method.pass_count({p.name: high}, (224, 224, 3))
        assert few < many, f"{name}: passes do not grow with {p.name} ({low} -> {few}, {high} -> {many})"
    if not counts and method.kind != "perturbation":
        assert method.pass_count({}, (224, 224, 3)) == 1, f"{name}: several passes, but no count parameter"


def test_declared_pass_counts():
    assert METHODS["smoothgrad"].pass_count({"samples": 7}, (32, 32, 3)) == 7
    assert METHODS["integrated_gradients"].pass_count({"steps": 9}, (32, 32, 3)) == 9
    assert METHODS["scorecam"].pass_count({"max_channels": 5}, (32, 32, 3)) == 6  # activations + 5 masks
    assert METHODS["lime"].pass_count({"num_samples": 30}, (32, 32, 3)) == 30
    occlusion = METHODS["occlusion"]
    assert occlusion.pass_count({"patch": 4, "stride": 4}, (32, 32, 3)) == 8 * 8 + 1  # positions + the picture
    assert occlusion.pass_count({"patch": 4, "stride": 2}, (32, 32, 3)) == 15 * 15 + 1
    assert occlusion.pass_count({}, (224, 224, 3)) == 14 * 14 + 1  # 16 px patches, stride 16
    for name in ("saliency", "guided_backprop", "gradcam", "gradcam_plus_plus", "guided_gradcam", "cam"):
        assert METHODS[name].pass_count({}, (224, 224, 3)) == 1
    assert not METHODS["cam"].backward and not METHODS["scorecam"].backward and not METHODS["lime"].backward
    assert METHODS["gradcam"].backward and METHODS["smoothgrad"].backward


@pytest.fixture(scope="module")
def small(tiny, handle_of):
    return handle_of(tiny.conv_softmax(input_shape=(12, 12, 3), classes=3))


@pytest.mark.parametrize(
    "name,params,extra",
    [
        ("occlusion", {"patch": 3, "stride": 2}, 0),  # corners + the picture, in one stream
        ("scorecam", {"max_channels": 3}, 1),  # + the activations pass, not run through the batches
        ("lime", {"num_samples": 30}, 0),
    ],
)
def test_passes_count_what_the_perturbation_methods_really_run(small, monkeypatch, name, params, extra):
    """Spy on the batched forward passes each method runs; the declared count must match them."""
    module = importlib.import_module(METHODS[name].fn.__module__)
    real, seen = module.run_batched, []

    def spy(m, count, *args, **kwargs):
        seen.append(count)
        return real(m, count, *args, **kwargs)

    monkeypatch.setattr(module, "run_batched", spy)
    picture = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    explain(small, picture, name, target=1, layer="conv2" if METHODS[name].uses_layer else None, **params)
    assert sum(seen) + extra == METHODS[name].pass_count(params, small.input_shape)


# ---- shared runs -------------------------------------------------------------------------
def test_methods_sharing_a_key_share_one_run():
    by_key: dict[str, set] = {}
    for method in METHODS.values():
        if method.shared_pass is not None:
            by_key.setdefault(method.shared_pass.key, set()).add(method.shared_pass.run)
            assert isinstance(method.shared_pass, SharedPass)
    assert by_key, "no method declares a shared pass"
    for key, runs in by_key.items():
        assert len(runs) == 1, f"methods sharing {key!r} declare different runs"


# ---- nobody else holds a list of methods --------------------------------------------------
def string_constants(path: Path) -> list[tuple[str, str]]:
    """(string, name of the enclosing top-level function or '') for every string constant in the file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, str]] = []
    for node in tree.body:
        scope = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ""
        for child in ast.walk(node):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                found.append((child.value, scope))
    return found


def method_modules() -> set[str]:
    return {method.fn.__module__ for method in METHODS.values()}


def imported_modules(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        scope = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ""
        for child in ast.walk(node):
            if isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, scope))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, scope) for alias in child.names)
    return found


def test_compare_names_no_method():
    path = ROOT / "interpret" / "compare.py"
    named = sorted({s for s, _ in string_constants(path) if s in METHODS})
    assert not named, f"interpret/compare.py branches on methods by name: {named}; declare it in the registry"
    imports = sorted({mod for mod, _ in imported_modules(path) if mod in method_modules()})
    assert not imports, f"interpret/compare.py imports method modules: {imports}"


def test_benchmark_reads_floors_and_parameters_from_the_registry():
    """Only the peer adapters (``*_jobs``: which peer does what our method does) may name a method."""
    path = ROOT / "benchmarks" / "bench_methods.py"
    named = sorted({(s, scope) for s, scope in string_constants(path) if s in METHODS and not scope.endswith("_jobs")})
    assert not named, f"benchmarks/bench_methods.py names methods outside the peer adapters: {named}"
    imports = sorted(
        {
            (mod, scope)
            for mod, scope in imported_modules(path)
            if mod in method_modules() and not scope.endswith("_jobs")
        }
    )
    assert not imports, f"benchmarks/bench_methods.py imports method modules outside the peer adapters: {imports}"
