"""Imported by the imaging pool's forkserver only (first in its preload list, :func:`limner.runner.pool._preload`),
never by the main process: once the run is over, the forkserver leaves at once instead of tearing its
interpreter down.

The forkserver outlives the run's last image by its own shutdown: it sees its parent gone and raises
``SystemExit``, and unloading NumPy, Pillow and the codecs it preloaded took 15-20 ms. Whoever reads the
command's output through a pipe (a script, ``limner generate --json | jq``, CI) waits for that too,
since the forkserver holds the same standard streams. It has nothing to flush or clean up: the workers
are separate processes (they leave with ``os._exit`` after their own shutdown), and it writes nothing.
A worker it forks inherits this exit handler but never runs it (a forked child leaves with ``os._exit``).
"""

from __future__ import annotations

import atexit
import os

atexit.register(os._exit, 0)
