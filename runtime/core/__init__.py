"""The contract layer: what every package of edgelight agrees on, importing only the standard library and numpy.

* ``errors``: the errors a user can cause (one line on stderr, exit code 2 in every CLI);
* ``io``: atomic file writes (a temporary name, then a rename);
* ``cli``: the argument parser, number checks and ``run`` shared by every ``python -m`` entry point;
* ``sidecar``: the typed sidecar written next to every exported artefact and read by every runner,
  with its one profile function and one validator;
* ``lighting``: SfSNet's SH constants, named SH lights and light paths;
* ``color``: sRGB <-> linear, and uint8 BGR frames <-> float NCHW tensors;
* ``__version__``: the project's version.

``train``, ``export``, ``runtime`` and ``benchmarks`` build on this layer; it imports none of them
(import-linter checks that in CI).
"""

__version__ = "0.1.0"
