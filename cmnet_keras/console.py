"""The console of the command lines: native libraries' log lines off, warnings as one line of our own.

TensorFlow's and mediapipe's C++ logging (absl, oneDNN, XNNPACK, the
`I0000 ...] ...` lines) is off unless `CMNET_NATIVE_LOGS=1`. TensorFlow reads
`TF_CPP_MIN_LOG_LEVEL` when it loads, so `configure_native_logs` runs when the
package is imported; mediapipe ignores it, so the commands drop its lines from
the process's stderr (`filter_native_logs`).
"""

import functools
import os
import re
import sys
import threading

SHOW_ENV = "CMNET_NATIVE_LOGS"
NATIVE_LINE = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] |WARNING: All log messages before absl::|"
                         rb"WARNING: Logging before InitGoogle\(\)|INFO: Created TensorFlow Lite )")
_filter = {}


def native_logs_wanted():
    """Whether the user asked for the native libraries' log lines (`CMNET_NATIVE_LOGS=1`)."""
    return os.environ.get(SHOW_ENV, "") == "1"


def configure_native_logs():
    """Turns TensorFlow's C++ INFO and WARNING lines off, unless asked for or already set by the user."""
    if not native_logs_wanted():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("GLOG_minloglevel", "2")


def show_warning(message, category, filename, lineno, file=None, line=None):
    """`warnings.showwarning` of the commands: "warning: MESSAGE", without the source line."""
    print(f"warning: {message}", file=file or sys.stderr, flush=True)


def progress_lines(show):
    """`print` onto stderr, flushed, for lines that say how long work goes on; does nothing unless `show`."""
    return functools.partial(print, file=sys.stderr, flush=True) if show else lambda *args: None


def filter_native_logs():
    """Routes the process's stderr (fd 2) through a thread that drops native log lines (`NATIVE_LINE`).

    A line is passed on when it ends (native lines come in pieces); a progress
    bar redrawn with carriage returns is passed on at once.
    `flush` restores fd 2 and passes on what is left.
    """
    if native_logs_wanted() or _filter:
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending = b""
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NATIVE_LINE.match(line))
            if b"\r" in pending and not NATIVE_LINE.match(pending):  # a progress bar redrawn in place
                kept, pending = kept + pending, b""
            if kept:
                os.write(original, kept)
        os.write(original, pending)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    _filter.update(original=original, thread=thread)


def flush():
    """Puts the original stderr back on fd 2 and waits (at most 2 s) for the filter to pass on what it holds."""
    if not _filter:
        return
    sys.stderr.flush()
    os.dup2(_filter["original"], 2)  # closes the pipe's last writer in this process
    _filter.pop("thread").join(timeout=2)
    _filter.clear()
