"""The Ray engine of ``cnn-lens batch``: Ray Data's batch-inference pattern, one model per actor.

The pictures' indices become a ``ray.data`` dataset; ``map_batches`` hands them, at the
batch size the command chose (the handle's measured best one by default), to a pool of
``Explainer`` actors (``compute=ActorPoolStrategy(size=actors)``, Ray 2.60's form of ``concurrency``). Each actor loads the model once, in its
``__init__`` (a ``.keras`` file is sent as bytes and checked there like an upload before
Keras reads it), reads its pictures itself (scaled down as decoded) and returns the same rows
as the local engine (:func:`serving.batch.shard_columns`). The driver streams the rows back
with ``iter_batches`` and writes each shard when it is complete.

- With GPUs in the cluster each actor asks for one (``num_gpus=1``); the CPUs are shared out
  among the actors otherwise, and each actor's TensorFlow uses only its share of threads.
- Without ``address`` the command starts a local Ray (``ray.init()``) and stops it at the end;
  with ``address`` ("auto", or "HOST:6379" of a ``ray start --head``) it joins that cluster.
- Bundled datasets and uploaded zips travel with the actors; a folder or a zip *path* must be
  readable at the same path on every node (a shared file system).

Only this module imports Ray, and only when the engine runs: the app never needs it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.batch import Work, from_wire, is_model_file


class Explainer:
    """A Ray Data actor: the model, loaded once; each call turns picture indices into rows."""

    def __init__(self, model: dict[str, Any], dataset, labels, settings, threads: int = 0) -> None:
        import tensorflow as tf

        if threads > 0:
            try:  # this actor's share of the CPUs (Ray sets no limit for TensorFlow by itself)
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
            except RuntimeError:  # TensorFlow already started in this worker process
                pass
        from models import load

        if "bytes" in model:  # a user's file: the same checks as an upload, here, before Keras reads it
            folder = tempfile.mkdtemp(prefix="cnn-lens-actor-")
            path = Path(folder) / model["filename"]
            path.write_bytes(model["bytes"])
            self.model = load(path, class_names=model["class_names"], preprocessing=model["preprocessing"])
        else:
            self.model = load(model["name"], weights=model["weights"])
        self.dataset, self.labels, self.settings = dataset, labels, settings
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from serving.batch import shard_columns, to_wire

        columns = to_wire(
            shard_columns(self.model, self.dataset, self.labels, batch["data"], self.settings), self.settings
        )
        columns["actor"] = np.full(len(columns["index"]), self.pid, dtype=np.int64)
        return columns


def steady_rate(arrivals: list[tuple[float, int]]) -> float | None:
    """Pictures per second over the second half of the job: actor start-up and the first bursts left out."""
    if len(arrivals) < 4:
        return None
    total = arrivals[-1][1]
    t_mid, p_mid = next((t, p) for t, p in arrivals if p >= total / 2)
    t_end = arrivals[-1][0]
    return (total - p_mid) / (t_end - t_mid) if t_end > t_mid else None


def model_spec(work: Work) -> dict[str, Any]:
    job = work.job
    if is_model_file(job.model):
        path = Path(job.model)
        return {
            "bytes": path.read_bytes(),
            "filename": path.name,
            "class_names": job.class_names,
            "preprocessing": job.preprocessing,
        }
    return {"name": job.model, "weights": job.weights}


def ray_engine(work: Work, address: str | None = None, actors: int | None = None) -> dict[str, Any]:
    """Run the work's shards on Ray; returns what it used (actors, GPUs, start-up seconds)."""
    import ray

    started = time.perf_counter()
    ours = not ray.is_initialized()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ours:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **options)
        else:
            # A local Ray on this machine: its workers import this project from the same place and
            # inherit this environment. (A runtime_env would do the same for 5 s more start-up.)
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            ray.init(**options)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        count = max(1, int(actors or (gpus or 1)))
        per_actor_cpus = 1 if gpus else max(1, cpus // count)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        indices = np.concatenate([np.arange(s.start, s.stop, dtype=np.int64) for s in work.shards])
        # From memory, no read tasks: every CPU given to the actors is theirs (an upstream task
        # needing a CPU would wait forever for one on a small machine).
        # One block per batch, so that every actor gets work (one block would feed one actor).
        chunks = [indices[i : i + work.batch_size] for i in range(0, len(indices), work.batch_size)]
        items = ray.data.from_numpy(chunks)  # one column, "data"
        rows = items.map_batches(
            Explainer,
            fn_constructor_kwargs={
                "model": model_spec(work),
                "dataset": work.dataset,
                "labels": work.labels,
                "settings": work.job.settings,
                "threads": 0 if gpus else per_actor_cpus,
            },
            batch_size=work.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=count),
            num_gpus=1 if gpus else 0,
            num_cpus=per_actor_cpus,
            zero_copy_batch=True,
        )
        pids: set[int] = set()
        arrivals: list[tuple[float, int]] = []  # (time, pictures so far): the steady rate is read from them
        pictures = 0
        for batch in rows.iter_batches(batch_size=None, batch_format="numpy"):
            pictures += len(np.unique(batch["index"]))
            arrivals.append((time.perf_counter(), pictures))
            if "actor" in batch:
                pids.update(int(v) for v in np.unique(batch["actor"]))
            wire = {k: v for k, v in batch.items() if k != "actor"}
            work.on_rows(from_wire(wire, work.dataset, work.labels, work.model.class_names, work.job.settings))
        steady = steady_rate(arrivals)
        return {
            "ray_first_rows_seconds": round(arrivals[0][0] - started, 3) if arrivals else None,
            "ray_steady_pictures_per_second": round(steady, 2) if steady else None,
            "actors": count,
            "actor_processes": len(pids),
            "gpus_per_actor": 1 if gpus else 0,
            "cpus_per_actor": per_actor_cpus,
            "cluster": "joined " + address if address else "local",
        }
    finally:
        if ours:
            ray.shutdown()
