"""SINE recommendation service: the torch-free core shared by every stage.

`sine.data` reads interaction logs and splits them, `sine.metrics` holds the ranking
metrics, `sine.bundle` the one model-bundle format; `sine.cli` is the `sine` command.
The trainer (`trainer`), index builder (`index_builder`) and service (`service`) are
sibling packages built on these pieces.
"""

__version__ = "0.1.0"
