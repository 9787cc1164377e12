"""Progress of a long data step, reported to a callback (the app's bar), tqdm, or nowhere.

`progress` arguments across tinyviz.data take `True` (a terminal bar), `False`, or a callable
`(done, total)`; this turns any of them into `(report(done), close())`.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def reporter(
    progress: bool | Progress, total: int, desc: str, **tqdm_options
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """`report(done)` takes the running count, not an increment."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if not progress:
        return (lambda done: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total or None, desc=desc, **tqdm_options)
    return (lambda done: bar.update(done - bar.n)), bar.close
