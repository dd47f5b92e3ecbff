"""What one run of :func:`sid_ft.inference.run.run_inference` is asked to do, checked in one place.

Imports without TensorFlow: the command line (:mod:`sid_ft.cli.test`) builds and checks
:class:`InferOptions` before anything heavy is loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sid_ft.errors import SidFtError
from sid_ft.eval.metrics import PROTOCOLS
from sid_ft.inference.jobs import Job
from sid_ft.inference.predictor import DEFAULT_OVERLAP

__all__ = ["ORIENTATIONS", "InferOptions", "job_orientation"]

ORIENTATIONS = ("sensor", "camera")
"""``--orientation``: 'sensor' leaves images as the sensor recorded them (SID); 'camera' applies LibRaw's flip."""


@dataclass
class InferOptions:
    """Everything scripts/test.py passes to :func:`run_inference` (see its --help for the meaning)."""

    checkpoint: str
    inputs: list[str] = field(default_factory=list)
    test_list: str | None = None
    out_dir: str | None = None
    bits: int | None = None  # PNG bit depth; None: 16, or 8 with protocol 'sid' (SID's PNGs)
    ratio: float | None = None
    target_exposure: float | None = None
    ratio_cap: float = 300.0
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    shard: tuple[int, int] | None = None
    skip_existing: bool = False
    device: str | None = None
    precision: str = "fp32"  # 'auto' | 'fp32' | 'bf16' | 'fp16' (sid_ft.nets.precision)
    export_savedmodel: str | None = None
    decode_workers: int = 2
    write_workers: int = 2
    metrics: bool = True
    progress: bool = True
    orientation: str | None = None  # 'sensor' | 'camera'; None: 'camera' for given files, 'sensor' for SID pairs
    protocol: str = "all"  # 'all': every pair, float scores; 'sid': SID's selection, 8-bit scores, exclusions
    compare: bool = False  # also write <stem>_compare.jpg: short x ratio | output | ground truth

    @property
    def has_inputs(self) -> bool:
        """Whether there are files to run (RAW files, folders, globs or a pair list), not only an export."""
        return bool(self.inputs) or self.test_list is not None

    def checked(self) -> InferOptions:
        """These options with the defaults that depend on others filled in (``bits``).

        Raises SidFtError naming the flag when the options do not make a run; checked in the
        order a user would fix them: what to do, the protocol, the outputs, the amplification.
        """
        if not self.has_inputs and not self.export_savedmodel:
            raise SidFtError(None, "nothing to do: give RAW files, folders or globs, --test-list, or "
                                   "--export-savedmodel")
        self._check_protocol()
        opts = self if self.bits is not None else replace(self, bits=8 if self.protocol == "sid" else 16)
        if opts.bits not in (8, 16):
            raise SidFtError(None, f"--bits {opts.bits}: only 8 and 16 are supported")
        if opts.orientation not in (None, *ORIENTATIONS):
            raise SidFtError(None, f"--orientation {opts.orientation!r}: expected one of {', '.join(ORIENTATIONS)}")
        opts._check_amplification()
        if opts.has_inputs and opts.out_dir is None:
            raise SidFtError(None, "--out-dir is required to write outputs")
        return opts

    def _check_protocol(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise SidFtError(None, f"--protocol {self.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.protocol == "sid" and (self.test_list is None or self.inputs):
            raise SidFtError(None, "--protocol sid scores SID's test pairs: give --test-list with a SID list file "
                                   "or a SID-layout folder (short/, long/), and no other inputs")

    def _check_amplification(self) -> None:
        for name, value in (("--ratio", self.ratio), ("--target-exposure", self.target_exposure)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise SidFtError(None, f"{name} {value!r} must be a positive number")
        if self.has_inputs and self.ratio is None and self.target_exposure is None and self.test_list is None:
            raise SidFtError(None, "no amplification ratio: give --ratio R (e.g. 100 for a 1/100 s shot meant to "
                                   "look like 1 s), or --target-exposure SECONDS (ratio = SECONDS / the input's "
                                   "exposure time), or --test-list with the long exposures (SID's rule, "
                                   "min(long/short, 300))")


def job_orientation(job: Job, opts: InferOptions) -> str:
    """``opts.orientation``, else the default: 'sensor' for SID pairs (a ground truth is known), 'camera' otherwise.

    SID's pairs are scored in sensor orientation, as SID trained and tested on them; a photographer's
    own file comes out the way the camera held it (LibRaw's flip, :func:`sid_ft.io.render.orient`).
    """
    if opts.orientation is not None:
        return opts.orientation
    return "sensor" if job.ground_truth is not None else "camera"
