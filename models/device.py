"""Which device TensorFlow computes on, in words a person can read."""

from __future__ import annotations

import functools


@functools.cache
def describe_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU: {details.get('device_name', gpus[0].name)}"


def default_batch_size() -> int:
    """Batch for perturbation methods: large on a GPU, moderate on a CPU."""
    return 32 if describe_device() == "CPU" else 256
