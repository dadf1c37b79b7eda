"""Runs a command as N `MultiWorkerMirroredStrategy` workers on this machine (loopback ports).

    python tests/workerpair.py 2 python -m cmnet_keras.train ... --strategy multiworker

Each worker gets `TF_CONFIG` with free ports (bound to port 0 and released) and its
task index; worker 0 is the chief. The launcher waits for all of them; when one fails,
it kills the others (a worker left alone waits forever for its peers) and exits with
the failure's code. The workers stay in the launcher's process group, so killing the
group (`killharness`) kills the whole pair.
"""

import json
import os
import socket
import subprocess
import sys
import time


def free_ports(count):
    """`count` distinct free TCP ports on the loopback interface."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` of a cluster on `ports`."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def main(count, command):
    ports = free_ports(count)
    workers = [subprocess.Popen(command, env=dict(os.environ, TF_CONFIG=tf_config(ports, i)))
               for i in range(count)]
    try:
        while True:
            codes = [w.poll() for w in workers]
            failed = [c for c in codes if c not in (None, 0)]
            if failed or all(c == 0 for c in codes):
                return failed[0] if failed else 0
            time.sleep(0.1)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2:]))
