"""vmexec benchmarks: vmexec against the raw guest agent and the peers' polling rule.

``python bench/run.py`` (``make bench``) runs every measure and prints one table; see
``bench/README.md``. Modules: :mod:`.latency`, :mod:`.fanout`, :mod:`.large_output` (one per
measure), :mod:`.baselines` (the raw and peer clients), :mod:`.server` (a ``vmexec serve``
subprocess and its memory), :mod:`.trace` (the engine's agent calls), :mod:`.report`.
"""
