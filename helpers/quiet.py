"""Import Keras without TensorFlow's native start-up messages.

TensorFlow's C++ core writes a dozen lines to the process's standard error while it loads and looks for
devices ("Could not find cuda drivers", "failed call to cuInit: UNKNOWN ERROR (303)", oneDNN and CPU-feature
notes). On a machine without a GPU they are expected and say nothing about the computation, but they land in
every notebook's output. Some are written before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so the variable
alone cannot hide them. :func:`import_keras` therefore sends the native standard error to a temporary file
while Keras (and its backend) loads and lists its devices, and passes on every line that is not one of those
known notices: real errors still show. TensorFlow's Python notes that a prediction function was traced again
for another input size are dropped too (a hint on speed, printed in the middle of a notebook's table).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

#: Native start-up notices that are dropped: absl's informational lines, the notice that precedes them, and the
#: messages of a CUDA build of TensorFlow on a machine without a GPU driver.
NOTICES = re.compile(r"^(I\d{4} |W\d{4} .*(cuda|gpu|TF-TRT)|WARNING: All log messages before absl"
                     r"|.*(cuInit|cuda drivers|CUDA_ERROR_NO_DEVICE|cpu_feature_guard)"
                     r"|To enable the following instructions:)", re.IGNORECASE)
_KERAS = None


def _drop_retracing_notes(record) -> bool:
    """A logging filter: TensorFlow's note that a prediction function was traced again for another input size
    ("... triggered tf.function retracing") is a hint on speed, not on the result; every other message passes."""
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def filtered_native_stderr(pattern=NOTICES):
    """Within the block, the process's file descriptor 2 goes to a temporary file; afterwards, every line of it
    that does not match ``pattern`` is written to ``sys.stderr``."""
    try:
        sys.stderr.flush()
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (an embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines()
                    if line.strip() and not pattern.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def import_keras():
    """``import keras`` with the backend loaded and its devices listed inside :func:`filtered_native_stderr`;
    later calls return the same module at once. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (warnings and errors)
    unless it is set already."""
    global _KERAS
    if _KERAS is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with filtered_native_stderr():
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices()  # CUDA is probed here: its notices come now, not later
                logging.getLogger("tensorflow").addFilter(_drop_retracing_notes)
        _KERAS = keras
    return _KERAS
