"""The method registry, read by the UI's method picker, the CLI, compare, the benchmark and the common tests.

Adding a method means one module (ending in its ``register(Method(...))`` call), one import
line in ``interpret/__init__.py``, and one test file; see CONTRIBUTING.md.

Everything the rest of the code needs to know about a method is declared here, so that no
caller holds a list of method names:

- its parameters (``Param``), whose defaults are the method function's own keyword
  defaults (declared once, in the function's signature; see ``SIGNATURE``);
- how many passes it makes (``passes``): its progress steps and the benchmark's floor;
- whether it can serve several target classes from one run (``shared_pass``): the compare grid;
- how its extras are drawn (``draw_extras``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from interpret.explanation import MethodResult


class _Signature:
    """The default of a ``Param`` that takes its value from the method function's signature."""

    def __repr__(self) -> str:
        return "SIGNATURE"


SIGNATURE: Any = _Signature()


@dataclass(frozen=True)
class Param:
    """One parameter of a method, described well enough to draw a widget and check a value."""

    name: str
    kind: str  # "int" | "float" | "choice" | "bool"
    # SIGNATURE: the default of the method function's keyword argument of the same name
    # (filled in by ``Method``), so that a default is written in one place only.
    default: Any = SIGNATURE
    help: str = ""
    min: float | None = None
    max: float | None = None  # also the safety cap for sample/mask counts
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, value: Any) -> Any:
        label = f"{self.name}={value!r}"
        if self.kind == "bool":
            if not isinstance(value, (bool, int)):
                raise ValueError(f"{label}: expected true or false.")
            return bool(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{label}: choose one of {', '.join(map(str, self.choices))}.")
            return value
        try:
            number = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label}: expected a number.") from None
        if self.kind == "int" and float(value) != number:
            raise ValueError(f"{label}: expected a whole number.")
        if number != number:  # NaN
            raise ValueError(f"{label}: expected a number.")
        if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
            raise ValueError(f"{label}: must be between {self.min} and {self.max}.")
        return number


MethodFn = Callable[..., MethodResult]
PassCount = Callable[[dict[str, Any], tuple[int, int, int]], int]
DrawExtras = Callable[[Any, dict[str, Any]], Any]


def one_pass(params: dict[str, Any], input_shape: tuple[int, int, int]) -> int:
    """Gradient and CAM methods: one pass (forward+backward, or forward only where ``backward=False``)."""
    return 1


@dataclass(frozen=True)
class SharedPass:
    """How a method serves several target classes from one run, e.g. for the compare grid.

    ``run(m, x, targets, layer, params, progress)`` makes the passes once for all ``targets``
    (``x``: the prepared picture, shape (1, H, W, C); ``params``: the checked parameters;
    ``progress(fraction, message)`` may raise ``Cancelled``) and returns whatever ``heatmap``
    needs; ``heatmap(result, i)`` is this method's map for ``targets[i]``, equal to what
    ``explain`` gives for that class. Methods that name the same ``key`` (and get the same
    parameters) share one run: the caller runs it once for all of them, e.g. Grad-CAM,
    guided backprop and guided Grad-CAM come from one forward, one plain and one guided
    backward pass. Methods sharing a key must use the same ``run``.
    """

    key: str
    run: Callable[..., Any]
    heatmap: Callable[[Any, int], Any]
    needs_layer: bool = False  # run needs a conv layer even if the method itself does not


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    fn: MethodFn
    paper: str
    kind: str  # "gradient" | "cam" | "perturbation"
    params: tuple[Param, ...] = ()
    uses_layer: bool = False
    signed: bool = False  # heatmap has meaningful negative values
    summary: str = ""
    # (checked params, model input shape) -> passes through the model the method makes for one
    # picture and one target: the weight of its progress and the benchmark's floor (1 for
    # gradient and CAM methods; samples, steps, occluded copies, masks for the others).
    passes: PassCount = one_pass
    # Whether each pass is forward+backward (gradients) or forward only. None: forward only
    # for kind "perturbation", forward+backward otherwise.
    backward: bool | None = None
    # One run for several target classes (compare's grid); None: ``explain`` once per class.
    shared_pass: SharedPass | None = None
    # How the method's extras are drawn over its overlay, e.g. LIME's superpixel boundaries:
    # (RGB uint8 overlay at display size, Explanation.extras) -> RGB uint8. None: nothing to draw.
    draw_extras: DrawExtras | None = None
    defaults: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(_with_signature_default(self, p) for p in self.params))
        object.__setattr__(self, "defaults", {p.name: p.default for p in self.params})
        if self.backward is None:
            object.__setattr__(self, "backward", self.kind != "perturbation")

    def pass_count(self, params: dict[str, Any], input_shape: tuple[int, int, int]) -> int:
        """``passes`` for these parameters (checked first; missing ones take their defaults)."""
        n = self.passes(self.check_params(params), tuple(input_shape))
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{self.name}: passes() gave {n!r}; expected a positive whole number.")
        return n

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in self.params}
        unknown = set(params) - set(known)
        if unknown:
            options = ", ".join(known) or "none"
            raise ValueError(
                f"{self.title} has no parameter {', '.join(sorted(unknown))}; its parameters are: {options}."
            )
        return {name: known[name].check(params.get(name, p.default)) for name, p in known.items()}


def signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword arguments of ``fn`` that have a default, with their defaults."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _with_signature_default(method: Method, param: Param) -> Param:
    """``param`` with its default taken from, or checked against, the method function's signature."""
    defaults = signature_defaults(method.fn)
    if param.default is SIGNATURE:
        if param.name not in defaults:
            raise TypeError(
                f"{method.name}: parameter {param.name!r} takes its default from {method.fn.__name__}(), "
                "which has no keyword argument of that name with a default."
            )
        return replace(param, default=defaults[param.name])
    if param.name in defaults and defaults[param.name] != param.default:
        raise TypeError(
            f"{method.name}: parameter {param.name!r} defaults to {param.default!r} in its Param but to "
            f"{defaults[param.name]!r} in {method.fn.__name__}(); declare it once (leave the Param's default out)."
        )
    return param


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method
