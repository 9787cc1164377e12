"""One re-entrant lock per model object, for code that must use a shared model alone.

The dashboard caches each loaded model once (`st.cache_resource`) and hands the same object
to every browser session, and Streamlit runs sessions in threads. Explainers mutate a model
while they run: captum registers forward and backward hooks on its modules (Grad-CAM on one
layer, guided backprop on every ReLU), and a forward pass by another thread in the meantime
would fire those hooks, or run without them. So whoever runs a shared model, explaining or
classifying, holds its lock.

The lock is re-entrant (`threading.RLock`): a service holding it may call another that
takes it too (an explanation that runs the model's own prediction) without deadlocking.

Locks are kept in a `WeakKeyDictionary`: a model evicted from the cache takes its lock with
it, and a new model object (new weights) gets a new lock.
"""

from __future__ import annotations

import threading
import weakref

_LOCKS: weakref.WeakKeyDictionary[object, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()  # makes "look up, else create" atomic across threads


def model_lock(model: object) -> threading.RLock:
    """The lock of `model` (created on first use; the same object for the model's lifetime)."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[model] = lock
        return lock
