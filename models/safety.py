"""Check an uploaded ``.keras`` file before Keras reads a byte of it.

An uploaded model is a program: a ``Lambda`` layer carries Python bytecode, a module
reference can name ``os``, a lookup layer's vocabulary can be a path or a URL, a zip
archive can be a bomb and an HDF5 dataset can claim terabytes. Three checks run here,
in order, and only then is the file loaded with ``safe_mode=True, compile=False``:

1. ``check_archive``: the zip container (allowed entries only, no traversal, absolute
   paths, symlinks or duplicates; caps on file size, uncompressed size and ratio).
2. ``check_config``: the whole ``config.json`` tree, nested models, wrappers and
   ``compile_config`` included. Every node that names an object (a class *or* a function:
   layer, activation, initializer, regularizer, constraint, dtype policy...) must be on an
   explicit allow-list of built-in Keras objects. The walk is linear in the config's size,
   with caps on its node count, its depth and its time.
3. ``check_weights``: every dataset declared in ``model.weights.h5`` against a byte cap,
   read from the header without loading any data.

The caps come from environment variables (read at each call, so a server can be tuned
without code changes); ``Limits.from_env()`` lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from models.errors import ModelLoadError, UnsafeModelError

WEIGHTS_ENTRY = "model.weights.h5"
ALLOWED_ENTRIES = {"config.json", "metadata.json", WEIGHTS_ENTRY}
ALLOWED_PREFIXES = ("assets/",)
FORBIDDEN_CLASSES = {"Lambda", "TFSMLayer", "__lambda__", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
VOCABULARY_KEYS = ("vocabulary", "idf_weights", "vocabulary_file", "filepath", "file_path")
UNSAFE_FLAG = "enable_unsafe_deserialization"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---- the allow-list: every object a config may name, by the module Keras writes for it ----------
# Keras 3 resolves ``{"module": m, "class_name": c}`` to whatever ``m.c`` is, a class *or a
# function* (``keras.ops.sin`` as an activation, ``keras.visualization.plot_model``, ``keras.random``
# as an initializer...), so a ``keras.*`` module is not enough: the name must be on these lists.
# Names are the ones Keras 3.15 exports (tests/security/test_allow_list.py checks each one).
LAYERS = _names(
    """Activation ActivityRegularization AdaptiveAveragePooling1D AdaptiveAveragePooling2D AdaptiveAveragePooling3D
    AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D Add AdditiveAttention AlphaDropout Attention AugMix
    AutoContrast Average AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
    BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate ContrastLimitedAdaptiveHistogramEqualization
    Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D
    Convolution1DTranspose Convolution2D Convolution2DTranspose Convolution3D Convolution3DTranspose Cropping1D Cropping2D
    Cropping3D CutMix Dense DepthwiseConv1D DepthwiseConv2D Discretization Dot Dropout ELU EinsumDense Embedding
    Equalization Flatten GRU GRUCell GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D
    GlobalAveragePooling3D GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GroupNormalization GroupQueryAttention HashedCrossing Hashing
    Identity InputLayer IntegerLookup LSTM LSTMCell LayerNormalization LeakyReLU Masking MaxNumBoundingBoxes MaxPool1D
    MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum MelSpectrogram Minimum MixUp MultiHeadAttention
    Multiply Normalization PReLU Permute Pipeline RMSNormalization RNN RandAugment RandomBrightness
    RandomColorDegeneration RandomColorJitter RandomContrast RandomCrop RandomElasticTransform RandomErasing RandomFlip
    RandomGaussianBlur RandomGrayscale RandomHue RandomInvert RandomPerspective RandomPosterization RandomRotation
    RandomSaturation RandomSharpness RandomShear RandomTranslation RandomZoom ReLU RepeatVector Rescaling Reshape Resizing
    ReversibleEmbedding STFTSpectrogram SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D
    SimpleRNN SimpleRNNCell Softmax Solarization SpatialDropout1D SpatialDropout2D SpatialDropout3D SpectralNormalization
    StackedRNNCells StringLookup Subtract TextVectorization TimeDistributed UnitNormalization UpSampling1D UpSampling2D
    UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D"""
)  # keras.layers minus Lambda, TFSMLayer, JaxLayer, FlaxLayer, TorchModuleWrapper and the Layer/Wrapper bases
INITIALIZERS = _names(
    """Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity IdentityInitializer LecunNormal LecunUniform Ones
    Orthogonal OrthogonalInitializer RandomNormal RandomUniform STFT STFTInitializer TruncatedNormal VarianceScaling
    Zeros"""
)
REGULARIZERS = frozenset({"L1", "L1L2", "L2", "OrthogonalRegularizer"})
CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})
DTYPE_POLICIES = _names(
    """DTypePolicy FloatDTypePolicy QuantizedDTypePolicy QuantizedFloat8DTypePolicy Int4DTypePolicy GPTQDTypePolicy
    AWQDTypePolicy DTypePolicyMap"""
)
MODELS = frozenset({"Model", "Sequential"})
# compile_config (nested models keep theirs, and Keras compiles them on load even with compile=False)
OPTIMIZERS = _names(
    """Adadelta Adafactor Adagrad Adam AdamW Adamax Ftrl Lamb Lion LossScaleOptimizer Muon Nadam RMSprop SGD
    ScheduleFreeAdamW"""
)
SCHEDULES = _names(
    """CosineDecay CosineDecayRestarts ExponentialDecay InverseTimeDecay PiecewiseConstantDecay PolynomialDecay"""
)
LOSSES = _names(
    """BinaryCrossentropy BinaryFocalCrossentropy CTC CategoricalCrossentropy CategoricalFocalCrossentropy
    CategoricalGeneralizedCrossEntropy CategoricalHinge Circle CosineSimilarity Dice Hinge Huber KLDivergence LogCosh
    MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredError MeanSquaredLogarithmicError Poisson
    SparseCategoricalCrossentropy SquaredHinge Tversky"""
)
METRICS = _names(
    """AUC Accuracy BinaryAccuracy BinaryCrossentropy BinaryIoU CategoricalAccuracy CategoricalCrossentropy
    CategoricalHinge ConcordanceCorrelation CosineSimilarity F1Score FBetaScore FalseNegatives FalsePositives Hinge IoU
    KLDivergence LogCoshError Mean MeanAbsoluteError MeanAbsolutePercentageError MeanIoU MeanMetricWrapper
    MeanSquaredError MeanSquaredLogarithmicError OneHotIoU OneHotMeanIoU PearsonCorrelation Poisson Precision
    PrecisionAtRecall R2Score Recall RecallAtPrecision RootMeanSquaredError SensitivityAtSpecificity
    SparseCategoricalAccuracy SparseCategoricalCrossentropy SparseTopKCategoricalAccuracy SpecificityAtSensitivity
    SquaredHinge Sum TopKCategoricalAccuracy TrueNegatives TruePositives"""
)
ALLOWED_CLASSES: dict[str, frozenset[str]] = {
    "keras.layers": LAYERS,
    "keras.initializers": INITIALIZERS,
    "keras.regularizers": REGULARIZERS,
    "keras.constraints": CONSTRAINTS,
    "keras": MODELS | DTYPE_POLICIES,
    "keras.models": MODELS,
    "keras.dtype_policies": DTYPE_POLICIES,
    "keras.src.models.functional": frozenset({"Functional"}),  # how Keras 3 writes a functional model
    "keras.src.models.sequential": frozenset({"Sequential"}),
    "keras.src.models.model": frozenset({"Model"}),
    "keras.optimizers": OPTIMIZERS,
    "keras.optimizers.schedules": SCHEDULES,
    "keras.losses": LOSSES,
    "keras.metrics": METRICS,
}
ANY_MODULE_CLASSES = frozenset().union(*ALLOWED_CLASSES.values())  # a node without "module": Keras looks it up by kind
# Values Keras writes as {"class_name": "__numpy__", "config": {...}} (no module; nothing is imported for them).
SPECIAL_CLASSES = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"})
ACTIVATION_FUNCTIONS = _names(
    """celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh leaky_relu linear log_sigmoid
    log_softmax mish relu relu6 selu sigmoid silu soft_shrink softmax softplus softsign sparse_plus sparse_sigmoid
    sparsemax squareplus swish tanh tanh_shrink threshold"""
)
LOSS_FUNCTIONS = _names(
    """binary_crossentropy binary_focal_crossentropy categorical_crossentropy categorical_focal_crossentropy
    categorical_generalized_cross_entropy categorical_hinge circle cosine_similarity ctc dice hinge huber kl_divergence
    log_cosh mean_absolute_error mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error poisson
    sparse_categorical_crossentropy squared_hinge tversky"""
)
METRIC_FUNCTIONS = _names(
    """binary_accuracy binary_crossentropy binary_focal_crossentropy categorical_accuracy categorical_crossentropy
    categorical_focal_crossentropy categorical_hinge concordance_correlation hinge huber kl_divergence log_cosh
    mean_absolute_error mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error
    pearson_correlation poisson sparse_categorical_accuracy sparse_categorical_crossentropy
    sparse_top_k_categorical_accuracy squared_hinge top_k_categorical_accuracy"""
)
BUILTIN_FUNCTIONS = ACTIVATION_FUNCTIONS | LOSS_FUNCTIONS | METRIC_FUNCTIONS
# {"class_name": "function", "module": m, "config": name}. Keras writes module "builtins" for its own
# loss and metric functions and then searches only keras.activations, keras.losses, keras.metrics...
ALLOWED_FUNCTIONS: dict[str | None, frozenset[str]] = {
    "keras.activations": ACTIVATION_FUNCTIONS,
    "keras.losses": LOSS_FUNCTIONS,
    "keras.metrics": METRIC_FUNCTIONS,
    "builtins": BUILTIN_FUNCTIONS,
    None: BUILTIN_FUNCTIONS,
}
ACCEPTED = (
    "Only built-in Keras layers (not Lambda or TFSMLayer), activations, initializers, regularizers, constraints, "
    "dtype policies, optimizers, losses, metrics and Keras models are accepted; any other object, even one from "
    "keras, could run code or write files when the model is loaded."
)
MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Caps on an uploaded model; defaults suit a class server, environment variables override them."""

    max_file_bytes: int = 600 * 1024 * 1024  # = server.maxUploadSize 600 (Streamlit counts MiB), 629 MB
    max_uncompressed_bytes: int = 2_000 * MB
    max_compression_ratio: float = 100.0
    max_config_bytes: int = 5 * MB
    max_weight_bytes: int = 2_000 * MB
    max_entries: int = 10_000
    max_config_nodes: int = 500_000
    max_config_depth: int = 100
    max_check_seconds: float = 0.5

    @classmethod
    def from_env(cls) -> Limits:
        """``CNN_LENS_MAX_MODEL_MB``, ``CNN_LENS_MAX_UNCOMPRESSED_MB``, ``CNN_LENS_MAX_COMPRESSION_RATIO``,
        ``CNN_LENS_MAX_WEIGHTS_MB``, ``CNN_LENS_MAX_CONFIG_MB``, ``CNN_LENS_MAX_CHECK_SECONDS``."""
        return cls(
            max_file_bytes=int(_env_float("CNN_LENS_MAX_MODEL_MB", cls.max_file_bytes / MB) * MB),
            max_uncompressed_bytes=int(
                _env_float("CNN_LENS_MAX_UNCOMPRESSED_MB", cls.max_uncompressed_bytes / MB) * MB
            ),
            max_compression_ratio=_env_float("CNN_LENS_MAX_COMPRESSION_RATIO", cls.max_compression_ratio),
            max_weight_bytes=int(_env_float("CNN_LENS_MAX_WEIGHTS_MB", cls.max_weight_bytes / MB) * MB),
            max_config_bytes=int(_env_float("CNN_LENS_MAX_CONFIG_MB", cls.max_config_bytes / MB) * MB),
            max_check_seconds=_env_float("CNN_LENS_MAX_CHECK_SECONDS", cls.max_check_seconds),
        )


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"The environment variable {name}={raw!r} must be a number.") from None
    if not value > 0:
        raise ValueError(f"The environment variable {name}={raw!r} must be positive.")
    return value


def check_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise UnsafeModelError(
            f"{path.name}: legacy HDF5 model files are refused, because their config can carry code that is hard "
            "to check. Re-save the model in the Keras 3 format: `model.save('name.keras')`."
        )
    if suffix != ".keras":
        raise UnsafeModelError(
            f"{path.name}: only Keras 3 `.keras` files are accepted (save with `model.save('name.keras')`). "
            "SavedModel folders and pickles are refused because loading them can run code."
        )


def _check_entry(info: zipfile.ZipInfo, label: str, limits: Limits) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\\" in name:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} points outside the archive.")
    if "\x00" in name:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} has a NUL byte in its name.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} is a symbolic link.")
    if info.flag_bits & 0x1:
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UnsafeModelError(f"{label}: refused, the archive entry {name!r} uses an unexpected compression method.")
    allowed = name in ALLOWED_ENTRIES or name.startswith(ALLOWED_PREFIXES) or (info.is_dir() and name == "assets/")
    if not allowed:
        raise UnsafeModelError(
            f"{label}: refused, unexpected entry {name!r} in a .keras archive "
            f"(expected {', '.join(sorted(ALLOWED_ENTRIES))} and assets/)."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MB and ratio > limits.max_compression_ratio:
        raise UnsafeModelError(
            f"{label}: refused, {name!r} expands {ratio:.0f}x when unpacked (limit {limits.max_compression_ratio:.0f}x); "
            "this looks like a zip bomb."
        )


def check_archive(path: str | Path, limits: Limits | None = None) -> dict[str, Any]:
    """Validate the zip container and return the parsed ``config.json``; nothing is unpacked to disk."""
    path = Path(path)
    limits = limits or Limits.from_env()
    check_suffix(path)
    if not path.is_file():
        raise ModelLoadError(f"No such model file: {path.name}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise UnsafeModelError(
            f"{path.name} is {size / MB:.0f} MB; the limit is {limits.max_file_bytes / MB:.0f} MB "
            "(CNN_LENS_MAX_MODEL_MB)."
        )
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path.name} is not a zip archive (or it is cut short), so it is not a Keras model. "
            "Save it with `model.save('name.keras')` and upload the whole file again."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_entries:
                raise UnsafeModelError(f"{path.name}: refused, the archive has {len(infos)} entries.")
            seen: set[str] = set()
            total = 0
            for info in infos:
                _check_entry(info, path.name, limits)
                if info.filename in seen:
                    raise UnsafeModelError(f"{path.name}: refused, the archive holds {info.filename!r} twice.")
                seen.add(info.filename)
                total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise UnsafeModelError(
                    f"{path.name}: refused, it expands to {total / MB:.0f} MB "
                    f"(limit {limits.max_uncompressed_bytes / MB:.0f} MB, CNN_LENS_MAX_UNCOMPRESSED_MB)."
                )
            if "config.json" not in seen:
                raise ModelLoadError(f"{path.name} has no config.json: it is not a Keras 3 model file.")
            info = archive.getinfo("config.json")
            if info.file_size > limits.max_config_bytes:
                raise UnsafeModelError(
                    f"{path.name}: refused, its config.json is {info.file_size / MB:.1f} MB; the limit is "
                    f"{limits.max_config_bytes / MB:g} MB (CNN_LENS_MAX_CONFIG_MB). A large Keras model needs under 1 MB."
                )
            raw = archive.read("config.json")
            if "metadata.json" in seen:
                if archive.getinfo("metadata.json").file_size > limits.max_config_bytes:
                    raise UnsafeModelError(f"{path.name}: refused, its metadata.json is oversized.")
                _parse_json(archive.read("metadata.json"), path.name, "metadata.json")
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{path.name} is a damaged zip archive ({exc}); save the model again.") from exc
    except (EOFError, OSError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise ModelLoadError(f"{path.name} could not be read as a zip archive ({exc}); save the model again.") from exc
    config = _parse_json(raw, path.name, "config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path.name}: its config.json does not describe a model.")
    return config


def _parse_json(raw: bytes, label: str, entry: str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise UnsafeModelError(f"{label}: refused, its {entry} is nested too deeply to read.") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and int() refusing a number of 4300+ digits
        raise ModelLoadError(f"{label}: its {entry} is not valid JSON ({_short(str(exc), 120)}).") from exc


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages never echo a megabyte of hostile text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(keys: list[Any]) -> str:
    """The path to the node being checked, built only for an error message (``config.layers[3].config``)."""
    parts = ["config"]
    for key in keys:
        parts.append(f"[{key}]" if isinstance(key, int) else "." + (key if len(key) <= 40 else key[:39] + "…"))
    return "".join(parts)


def _in_keras(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")


def _check_node(node: dict[str, Any], keys: list[Any], label: str) -> None:
    """One node that names an object (it has a class_name, module or registered_name): allow-listed or refused."""
    cls = node.get("class_name")
    module = node.get("module")
    registered = node.get("registered_name")
    if isinstance(cls, str) and cls in FORBIDDEN_CLASSES:
        kind = "lambda function" if cls == "__lambda__" else f"{cls} layer"
        raise UnsafeModelError(
            f"{label}: refused, it contains a {kind} ({_where(keys)}). It can run arbitrary code when loaded; "
            "rebuild the model with built-in Keras layers only."
        )
    if not isinstance(cls, str) or not (module is None or isinstance(module, str)):
        raise UnsafeModelError(
            f"{label}: refused, it has an object reference without a plain class name and module "
            f"(class_name={_short(cls)}, module={_short(module)}, at {_where(keys)}). {ACCEPTED}"
        )
    if registered is not None and not isinstance(registered, str):
        raise UnsafeModelError(
            f"{label}: refused, it has the registered name {_short(registered)} ({_where(keys)}). {ACCEPTED}"
        )
    if cls == "function":
        _check_function(node, module, registered, keys, label)
        return
    if module is not None and not _in_keras(module):
        raise UnsafeModelError(
            f"{label}: refused, it references code from module {_short(module)} ({_where(keys)}). "
            "Only built-in Keras objects are accepted; custom objects are not loaded."
        )
    if cls in SPECIAL_CLASSES:
        if module is None:
            return
        allowed: frozenset[str] = frozenset()
    else:
        allowed = ANY_MODULE_CLASSES if module is None else ALLOWED_CLASSES.get(module, frozenset())
    if cls not in allowed:
        name = _short(f"{module}.{cls}" if module else cls, 80)
        raise UnsafeModelError(
            f"{label}: refused, it references {name} ({_where(keys)}), which is not on CNN Lens's list of "
            f"built-in Keras objects. {ACCEPTED}"
        )
    if registered not in (None, cls):
        raise UnsafeModelError(
            f"{label}: refused, it uses the custom registered object {_short(registered)} ({_where(keys)}). "
            "Only built-in Keras objects are accepted."
        )
    config = node.get("config")
    if isinstance(config, dict):
        for key in VOCABULARY_KEYS:
            if isinstance(config.get(key), str):
                raise UnsafeModelError(
                    f"{label}: refused, its {cls} reads {key}={_short(config[key])} from a file or URL "
                    f"({_where(keys)}). Pass the vocabulary as a list instead."
                )


def _check_function(node: dict[str, Any], module: str | None, registered: str | None, keys: list, label: str) -> None:
    name = node.get("config")
    allowed = ALLOWED_FUNCTIONS.get(module)
    if isinstance(name, str) and allowed is not None and name in allowed:
        if registered not in (None, "function", name):
            raise UnsafeModelError(
                f"{label}: refused, it uses the custom registered object {_short(registered)} ({_where(keys)}). "
                "Only built-in Keras objects are accepted."
            )
        return
    if module is not None and not _in_keras(module):
        raise UnsafeModelError(
            f"{label}: refused, it references code from module {_short(module)} "
            f"(the function {_short(name)}, at {_where(keys)}). "
            "Only built-in Keras objects are accepted; custom objects are not loaded."
        )
    raise UnsafeModelError(
        f"{label}: refused, it references the function {_short(name)} from {_short(module)} ({_where(keys)}); "
        "only activation functions from keras.activations (and loss and metric functions from keras.losses "
        "and keras.metrics) are accepted."
    )


def check_config(config: dict[str, Any], filename: str = "model", limits: Limits | None = None) -> None:
    """Refuse anything in the config tree that is not an allow-listed Keras object, or that could read files.

    One pass over the tree, linear in its size: a stack of iterators, and a stack of keys from
    which the path of a node is built only when it is reported. Caps on the node count, the
    depth and the time (``Limits``) are checked as it goes.
    """
    limits = limits or Limits.from_env()
    deadline = time.perf_counter() + limits.max_check_seconds
    frames: list[Iterator[tuple[Any, Any]]] = []  # frames[i]: the (key, child) pairs of a container still to visit
    keys: list[Any] = []  # keys[i]: the key in frames[i] of the node being visited
    count = 0
    node: Any = config
    while True:
        count += 1
        if count > limits.max_config_nodes:
            raise UnsafeModelError(
                f"{filename}: refused, its config.json has more than {limits.max_config_nodes:,} entries "
                "(a large Keras model has tens of thousands)."
            )
        if not count & 4095 and time.perf_counter() > deadline:
            raise UnsafeModelError(
                f"{filename}: refused, checking its config.json took more than {limits.max_check_seconds:g} s "
                f"({count:,} entries so far; CNN_LENS_MAX_CHECK_SECONDS)."
            )
        if isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and UNSAFE_FLAG in key:
                    raise UnsafeModelError(f"{filename}: refused, it references {UNSAFE_FLAG} ({_where(keys)}).")
            if "class_name" in node or "module" in node or "registered_name" in node:
                _check_node(node, keys, filename)
            children: Iterator[tuple[Any, Any]] | None = iter(node.items()) if node else None
        elif isinstance(node, list):
            children = enumerate(node) if node else None
        else:
            children = None
            if isinstance(node, str) and UNSAFE_FLAG in node:
                raise UnsafeModelError(
                    f"{filename}: refused, it references {UNSAFE_FLAG}, which would switch off safe loading "
                    f"({_where(keys)})."
                )
        if children is not None:
            if len(frames) >= limits.max_config_depth:
                raise UnsafeModelError(
                    f"{filename}: refused, its config.json is nested more than {limits.max_config_depth} levels "
                    f"deep (a Keras model needs a few dozen), at {_where(keys)[:200]}."
                )
            frames.append(children)
            keys.append(None)
        while frames:
            item = next(frames[-1], None)
            if item is None:
                frames.pop()
                keys.pop()
                continue
            keys[-1], node = item
            break
        else:
            return


def check_weights(path: str | Path, limits: Limits | None = None) -> int:
    """Sum the bytes every dataset in ``model.weights.h5`` declares, reading headers only; refuse past the cap.

    Returns the declared total. An HDF5 dataset can claim a huge shape while storing nothing,
    and Keras would allocate the whole of it on load.
    """
    import h5py

    path = Path(path)
    limits = limits or Limits.from_env()
    with zipfile.ZipFile(path) as archive:
        if WEIGHTS_ENTRY not in archive.namelist():
            return 0
        stored = archive.getinfo(WEIGHTS_ENTRY).file_size
        cap = min(limits.max_weight_bytes, max(int(stored * limits.max_compression_ratio), MB))
        total = 0
        try:
            # h5py seeks all over the file; a seek inside a zip entry re-reads it from the start
            # (14 s for InceptionV3's 96 MB), so the entry is copied to a temporary file first.
            with tempfile.TemporaryFile() as copy:
                with archive.open(WEIGHTS_ENTRY) as raw:
                    shutil.copyfileobj(raw, copy, 1 << 20)
                copy.seek(0)
                with h5py.File(copy, "r") as h5:
                    total = _declared_weight_bytes(h5, path.name, cap, stored, limits)
        except UnsafeModelError:
            raise
        except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on damaged files
            raise ModelLoadError(f"{path.name}: its weights file is damaged ({type(exc).__name__}: {exc}).") from exc
    return total


def _declared_weight_bytes(h5: Any, label: str, cap: int, stored: int, limits: Limits) -> int:
    import h5py

    total = 0
    pending: list[Any] = [h5]
    count = 0
    while pending:
        group = pending.pop()
        for key in group:
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise UnsafeModelError(f"{label}: refused, its weights file has a link {_short(key)}.")
            item = group[key]
            count += 1
            if count > limits.max_entries:
                raise UnsafeModelError(f"{label}: refused, its weights file has too many entries.")
            if isinstance(item, h5py.Group):
                pending.append(item)
            elif isinstance(item, h5py.Dataset):
                if item.is_virtual or item.external:
                    where = "in other files (a virtual dataset)" if item.is_virtual else "in an external file"
                    raise UnsafeModelError(f"{label}: refused, weight {_short(item.name)} keeps its data {where}.")
                if item.dtype.kind not in "biufV" or item.dtype.itemsize > 16:
                    raise UnsafeModelError(
                        f"{label}: refused, weight {_short(item.name)} has the non-numeric type {item.dtype}."
                    )
                declared = int(item.dtype.itemsize)
                for dim in item.shape or ():
                    declared *= int(dim)
                total += declared
                if total > cap:
                    raise UnsafeModelError(
                        f"{label}: refused, weight {_short(item.name)} claims shape {item.shape} "
                        f"({declared / MB:.0f} MB) and the weights would need more than {cap / MB:.0f} MB, "
                        f"while the file stores {stored / MB:.1f} MB (CNN_LENS_MAX_WEIGHTS_MB)."
                    )
    return total


declared_weight_bytes = _declared_weight_bytes  # also checks Keras 2 .h5 files (models.legacy_h5)


def check_file(path: str | Path, limits: Limits | None = None, weights: bool = True) -> dict[str, Any]:
    """All the checks, in order; returns the parsed config. ``weights=False`` skips the HDF5 header read."""
    path = Path(path)
    limits = limits or Limits.from_env()
    config = check_archive(path, limits)
    check_config(config, path.name, limits)
    if weights:
        check_weights(path, limits)
    return config
