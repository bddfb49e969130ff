"""One point of a sweep, in its own process: ``python -m vpf_spiking.sweep.point SPEC``.

``SPEC`` is a JSON object: ``protocol`` (file), ``out`` (the point's folder), ``overrides``
(``KEY=VALUE`` items), ``resume`` (bool) and ``command`` (the line for ``command.txt``).

It does what ``vpf run PROTOCOL --set K=V ... --out DIR/<point> [--resume]`` does: it loads the
protocol with :func:`~vpf_spiking.protocols.load_protocol` and hands it, the overrides, the
output folder and the recorded command line to :func:`~vpf_spiking.protocols.run_protocol`.
The one difference: a ``[sweep]`` table in the file (which ``vpf run`` would refuse as an
unknown key) is dropped first.

Exit status: 0 done; 2 an error the user can fix (the last line of standard error is
``vpf: error: <one line>``, as for ``vpf``); 1 any other exception (traceback, then the same
last line); 130 interrupted.  On Linux the process asks to be killed when the worker thread that
started it dies (``PR_SET_PDEATHSIG``), so a worker killed mid-point leaves no orphan behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

ERROR_PREFIX = "vpf: error: "


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies; exit at once if it is gone already."""
    parent = os.environ.get("VPF_SWEEP_PARENT_PID")
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if parent and os.getppid() != int(parent):
        os._exit(137)  # the worker died between fork and prctl


def one_line(text) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(ERROR_PREFIX + "usage: python -m vpf_spiking.sweep.point SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    _die_with_parent()

    from vpf_spiking.errors import VPFError

    try:
        from vpf_spiking.protocols import load_protocol, run_protocol

        config = load_protocol(spec["protocol"])
        config.pop("sweep", None)
        print(f"running protocol {spec['protocol']} (kind {config['kind']}) into {spec['out']}/", flush=True)
        run_protocol(config, out_dir=spec["out"], overrides=list(spec.get("overrides", ())),
                     resume=bool(spec.get("resume")), overwrite=not spec.get("resume"),
                     command=spec.get("command"))
    except VPFError as exc:
        print(ERROR_PREFIX + one_line(exc), file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(ERROR_PREFIX + "interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes the point's one-line error
        traceback.print_exc()
        print(ERROR_PREFIX + one_line(f"{type(exc).__name__}: {exc}"), file=sys.stderr, flush=True)
        return 1
    print("point done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
