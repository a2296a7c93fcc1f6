"""Runnable versions of the Hatchet guide's examples, one module each.

Render one with ``kubehatch render examples.ex03_two_step:worker``; run one in-process
with ``python -m examples.ex03_two_step``. ``python -m examples.regenerate`` rewrites
the YAML files checked in beside the modules.
"""

IMAGE = "kubehatch-examples:latest"
"""The image the example steps run in (built from this repository)."""
