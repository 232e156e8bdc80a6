"""The method registry: the UI's method picker, the CLI and the common tests all read ``METHODS``.

Adding a method means one module, one ``register`` call in ``interpret/__init__.py``'s
import list, and one test file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interpret.explanation import MethodResult


@dataclass(frozen=True)
class Param:
    """One parameter of a method, described well enough to draw a widget and check a value."""

    name: str
    kind: str  # "int" | "float" | "choice" | "bool"
    default: Any
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
    """Gradient and CAM methods: one forward+backward pass."""
    return 1


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
    # (checked params, model input shape) -> forward passes the method makes: its progress
    # steps and the benchmark's floor (one pass for gradient methods; N for perturbations).
    passes: PassCount = one_pass
    # How the method's extras are drawn over its overlay, e.g. LIME's superpixel boundaries:
    # (RGB uint8 overlay at display size, Explanation.extras) -> RGB uint8. None: nothing to draw.
    draw_extras: DrawExtras | None = None
    defaults: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", {p.name: p.default for p in self.params})

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in self.params}
        unknown = set(params) - set(known)
        if unknown:
            options = ", ".join(known) or "none"
            raise ValueError(
                f"{self.title} has no parameter {', '.join(sorted(unknown))}; its parameters are: {options}."
            )
        return {name: known[name].check(params.get(name, p.default)) for name, p in known.items()}


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method
