"""SINE recommendation service: the torch-free core shared by every stage.

`sine.data` reads interaction logs and splits them, `sine.metrics` holds the ranking
metrics, `sine.bundle` the one model-bundle format and `sine.bundle_store` the store of
versions and the live-model pointer. The trainer (`trainer`), index builder
(`index_builder`), service (`service`) and retrain (`deploy`) are built on these pieces and
this package imports none of them; the `sine` command (`sine_cli`) sits on top of all.
"""

__version__ = "0.1.0"
