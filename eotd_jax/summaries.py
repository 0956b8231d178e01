"""TensorBoard scalars of a run, in `<workdir>/tensorboard`, local or `gs://`.

`tf.summary` writes through TensorFlow's file system, which cannot be pointed
at anything but Google's endpoint, so it writes into a local `paths.Mirror`
that is uploaded after a flush (at most every `push_seconds`) and on close.
"""

from __future__ import annotations

import math

from eotd_jax import paths


class ScalarWriter:
    def __init__(self, directory: str, push_seconds: float = 30.0):
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")  # TensorFlow only writes event files here
        self._tf = tf
        self._mirror = paths.Mirror(directory, min_push_seconds=push_seconds)
        self._writer = tf.summary.create_file_writer(self._mirror.local)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Logs the finite metrics at `step`, flushed to the event file (and uploaded when due)."""
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                if math.isfinite(value):
                    self._tf.summary.scalar(name, value)
        self._writer.flush()
        self._mirror.push()

    def close(self) -> None:
        self._writer.close()
        self._mirror.close()
