"""Progress bars with an ETA for the long loops (training, images on an engine, search trials):
on a terminal only (tqdm's automatic mode), so logs and CI output stay line by line."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, disable=None, leave=False, file=sys.stderr,
                mininterval=0.5, dynamic_ncols=True)
