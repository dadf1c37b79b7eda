"""Zip files that may come from someone else (torch checkpoints, xlsx workbooks): sized before they are inflated.

A zip entry declares its uncompressed size, and `zipfile` never inflates an
entry past it (a stream longer than declared fails its CRC check instead). So
the declared sizes bound what reading a file costs: `check_inflation` refuses a
file whose parts would add up to far more than the file itself, before any is read.
"""

import pathlib
import zipfile
import zlib

# What `zipfile` raises on a damaged or crafted archive (bad CRC, truncated or
# corrupt stream, unsupported compression, encryption).
ZIP_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError)


def check_inflation(path, sizes, ratio, error=ValueError):
    """Raises `error` when what reading the file `path` makes would pass `ratio` times its size on disk.

    Args:
        path: the file.
        sizes: {name: bytes} of what reading it makes: its zip entries (declared sizes), arrays built from them.
        ratio: bytes allowed per byte of the file.
        error: the exception class raised (a ValueError).
    """
    size = pathlib.Path(path).stat().st_size
    total = sum(sizes.values())
    if total > ratio * size:
        largest = max(sizes, key=sizes.get)
        raise error(f"{path}: refused unread: it would inflate to {total} bytes, more than {ratio}x its {size} "
                    f"bytes (the largest part: {largest}, {sizes[largest]} bytes)")
