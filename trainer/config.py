"""Training configuration: every hyper-parameter, its default and its help text, once.

Defaults are the paper's (section 4.1 and Table 3: D = 128, n = 20, lambda = 0.5,
tau = 0.1, Adam with learning rate 1e-3, batch 128; K = 4 and L = 500 as for its Amazon
data). The CLI builds its options from these fields, and a JSON or TOML file with the
same keys can set any of them (command-line flags win over the file).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import numbers
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sine.errors import SineError

MODELS = ("sine", "sasrec", "pop", "gru4rec", "caser", "mind", "mcprn")
LOSSES = ("auto", "full", "sampled")
PRECISIONS = ("auto", "fp32", "bf16")
AGGREGATIONS = ("cosine", "dot")
DEFAULT_DROPOUT = {"sasrec": 0.5, "gru4rec": 0.3, "caser": 0.4}
"""`dropout` when not set: RecBole 1.2.1's default of each model (SINE: none)."""
FULL_SOFTMAX_MAX_ITEMS = 50_000
"""`loss=auto` uses the full softmax up to this many items, the sampled one above."""


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    model: str = _f("sine", "Model to train: sine, sasrec, pop (most popular), gru4rec, caser, mind "
                    "or mcprn.", MODELS)
    dim: int = _f(128, "Embedding size D.")
    max_len: int = _f(20, "Clicks the model sees: the last n of a sequence.")
    # SINE (paper section 3)
    interests: int = _f(4, "SINE: interests K activated per user (eq. 2); MIND: interest capsules; MCPRN: channels.")
    prototypes: int = _f(500, "SINE: size L of the concept pool (eq. 2).")
    tau: float = _f(0.1, "SINE: temperature of the interest aggregation (eq. 7).")
    aggregation: str = _f(
        "cosine",
        "SINE: eq. (7) compares C_apt and each interest by cosine, or by inner product "
        "(dot, as the paper prints it).",
        AGGREGATIONS,
    )
    assignment_tau: float = _f(
        1.0, "SINE: temperature of the intention assignment's cosine (eq. 3); 1.0 = none."
    )
    reg_weight: float = _f(0.5, "SINE: weight lambda of the covariance regulariser (eq. 11).")
    tied_embeddings: bool = _f(
        True, "SINE, Caser: score items against the input embedding table (H of eq. 9 = input "
        "table; Caser: W' of its eq. 8 = input table)."
    )
    # MIND (Li et al., CIKM 2019) and MCPRN (Wang et al., IJCAI 2019); K is --interests
    routing_iterations: int = _f(3, "MIND: iterations r of the B2I dynamic routing (Algorithm 1).")
    dynamic_interests: bool = _f(
        False, "MIND: K'_u = max(1, min(K, log2 |I_u|)) interests per user (eq. 8) instead of K.")
    attention_power: float = _f(
        2.0, "MIND: power p of the label-aware attention in training (eq. 9); inf: hard.")
    purpose_tau: float = _f(0.1, "MCPRN: temperature of the purpose router's softmax.")
    label_aware: bool = _f(
        False, "SINE-label (paper section 4.5): train with MIND's label-aware attention over the "
        "K interests instead of eqs. (7)-(8); evaluate by the K*N per-interest candidates merged "
        "by score.")
    label_power: int = _f(1, "SINE-label: power p of MIND's attention softmax(pow(phi^k . h, p)).")
    prototypes_from: str | None = _f(
        None, "SINE-cate (paper section 4.5): the concept pool is this attribute's labels in "
        "--attributes (one prototype per label: the mean embedding of its items); --prototypes "
        "is then the number of labels.")
    attributes: str | None = _f(
        None, "Item attribute file (CSV/Parquet: item_id plus columns such as category, brand, "
        "available; several labels as a|b): carried into the bundle for filters and diversity, "
        "and the categories of --prototypes-from.")
    # SASRec
    layers: int = _f(2, "SASRec: self-attention blocks.")
    heads: int = _f(2, "SASRec: attention heads per block.")
    inner_dim: int = _f(256, "SASRec: hidden size of the feed-forward layer.")
    attention_dropout: float = _f(0.5, "SASRec: dropout on attention weights.")
    # GRU4Rec and Caser (RecBole 1.2.1's defaults)
    gru_hidden: int = _f(128, "GRU4Rec: hidden size of the GRU.")
    gru_layers: int = _f(1, "GRU4Rec: stacked GRU layers.")
    caser_horizontal: int = _f(16, "Caser: horizontal filters per height 1..n (n_h).")
    caser_vertical: int = _f(4, "Caser: vertical filters (n_v).")
    dropout: float | None = _f(
        None, "Dropout on embeddings (SASRec: and block outputs; Caser: on the convolution "
        "outputs instead); default 0 for sine, mind and mcprn, 0.5 sasrec, 0.3 gru4rec, 0.4 caser."
    )
    # optimisation
    loss: str = _f(
        "auto",
        f"Softmax over the catalog: full, sampled (with log-Q correction), or auto "
        f"(full up to {FULL_SOFTMAX_MAX_ITEMS:,} items).",
        LOSSES,
    )
    negatives: int = _f(1024, "Sampled softmax: negatives shared by a batch.")
    precision: str = _f(
        "auto",
        "Catalog-wide products of the full softmax in bf16 (softmax and weights stay fp32), "
        "fp32, or auto (bf16 where the hardware computes it natively: AVX512-BF16/AMX "
        "CPUs, CUDA GPUs with bf16). bf16 on a CPU without it computes a GPU's bf16 "
        "products in float32: no faster, for measuring bf16 accuracy.",
        PRECISIONS,
    )
    length_buckets: bool = _f(
        True,
        "Batch training examples of similar length together and drop all-padding columns "
        "(the same examples and epochs, less padding to compute).",
    )
    batch_size: int = _f(128, "Training examples per step.")
    lr: float = _f(1e-3, "Adam learning rate.")
    weight_decay: float = _f(0.0, "Adam weight decay.")
    epochs: int = _f(100, "Most epochs to train.")
    patience: int = _f(10, "Stop after this many epochs without a better validation NDCG@10.")
    stop_decline: float = _f(
        0.0, "Also stop once validation NDCG@10 has stayed this fraction below its best for "
        "--decline-epochs epochs in a row (0: patience alone; see trainer/stopping.py).")
    decline_epochs: int = _f(2, "Epochs in a row that --stop-decline asks for.")
    seed: int = _f(0, "Random seed: the same seed, data and threads give the same model.")
    device: str = _f("auto", "cpu, cuda, cuda:N, or auto (cuda when available).")
    threads: int = _f(0, "CPU threads for torch (0: torch's default, all cores).")
    init_from: str | None = _f(
        None, "Warm start: initialise from this run directory (items matched by id).")
    # data
    min_item_count: int = _f(0, "Drop items with fewer clicks before splitting.")
    min_user_count: int = _f(0, "Then drop users with fewer clicks.")
    memory_budget: str | None = _f(
        None, "Read a Parquet log (file or partitioned directory) in a streaming way within "
        "about this much memory (e.g. 512M, 2G): users are spilled to temporary files under "
        "$TMPDIR in buckets that fit, and training examples are cut per batch "
        "(sine/data/stream.py). The budget bounds the data path's buckets, not the process: "
        "the model, the optimiser and torch come on top. Default: the whole log in memory.")
    eval_users: int = _f(
        0, "Evaluate on this many users drawn at random (0: every user); full ranking of a "
        "million-item catalog for every user is out of reach on a CPU.")

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise SineError(
                    f"--{f.name.replace('_', '-')} must be one of {', '.join(choices)}, "
                    f"not {getattr(self, f.name)!r}"
                )
        positive = ("dim", "max_len", "interests", "prototypes", "batch_size", "epochs",
                    "negatives", "layers", "heads", "inner_dim", "decline_epochs",
                    "gru_hidden", "gru_layers", "caser_horizontal", "caser_vertical")
        for name in positive:
            if getattr(self, name) < 1:
                raise SineError(f"--{name.replace('_', '-')} must be at least 1")
        if self.model == "sine" and self.interests > self.prototypes:  # K of the L concepts
            raise SineError(
                f"--interests (K={self.interests}) cannot exceed --prototypes (L={self.prototypes})"
            )
        if self.routing_iterations < 1:
            raise SineError("--routing-iterations must be at least 1")
        if not self.attention_power >= 0:
            raise SineError("--attention-power must be >= 0 (inf: hard attention)")
        if self.label_power < 0:
            raise SineError("--label-power must not be negative")
        if self.prototypes_from and not self.attributes:
            raise SineError("--prototypes-from needs --attributes FILE (the item attribute file)")
        if (self.label_aware or self.prototypes_from) and self.model != "sine":
            raise SineError("--label-aware and --prototypes-from are options of --model sine")
        for name in ("tau", "assignment_tau", "purpose_tau"):
            if getattr(self, name) <= 0:
                raise SineError(f"--{name.replace('_', '-')} must be positive")
        if self.threads < 0:
            raise SineError("--threads must be 0 (torch's default) or more")
        if self.eval_users < 0:
            raise SineError("--eval-users must be 0 (all) or more")
        if not 0.0 <= self.stop_decline < 1.0:
            raise SineError("--stop-decline must be in [0, 1)")
        for f in fields(self):  # NaN passes every range check above; inf is a hard attention
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value) and not (
                    f.name == "attention_power" and value == math.inf):
                raise SineError(f"--{f.name.replace('_', '-')} must be a finite number, not {value}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise SineError(f"--{name.replace('_', '-')} must be in [0, 1)")

    @property
    def embedding_dropout(self) -> float:
        if self.dropout is not None:
            return self.dropout
        return DEFAULT_DROPOUT.get(self.model, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Settings from a config file, a bench script's --set or a run's record: keys and
        value types are checked here, so a typo is refused by name, not met as a TypeError
        deep in validation or training."""
        return cls(**typed_values(values))


_KIND_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@functools.cache
def field_types() -> dict[str, tuple[type, bool]]:
    """Each TrainConfig field's type X and whether it may be None (annotated `X | None`):
    the CLI builds its options from these and from_dict checks values against them."""
    types = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint) or (hint,)
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) != 1 or kinds[0] not in _KIND_WORDS:
            raise TypeError(f"TrainConfig.{name}: from_dict cannot check a {hint}")
        types[name] = (kinds[0], type(None) in args)
    return types


def typed_values(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as TrainConfig's fields take them (see _typed), or a SineError naming the
    first unknown key or value of the wrong type; the combination is checked by the config."""
    unknown = sorted(set(values) - set(field_types()))
    if unknown:
        raise SineError(f"unknown configuration key(s): {', '.join(unknown)}")
    return {key: _typed(key, value) for key, value in values.items()}


def _typed(name: str, value: Any) -> Any:
    """`value` as field `name` takes it, or a SineError naming the flag and what it takes.

    Values come from JSON, TOML, a bench script's KEY=VALUE or numpy: a string that reads
    as the number a field wants is taken ("inf" for --attention-power, which JSON cannot
    write), a whole float for an integer (3.0 in an old config), any number for a float,
    and a number for a string (memory_budget = 1073741824 bytes); numpy numbers are
    numbers, but bool is never one.
    """
    kind, optional = field_types()[name]
    if value is None and optional:
        return value
    if kind in (int, float) and isinstance(value, str):
        with contextlib.suppress(ValueError):  # refused below, by name
            value = kind(value)
    if kind is bool and isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if kind is int and isinstance(value, numbers.Integral):
            return int(value)
        with contextlib.suppress(OverflowError):  # an int beyond float's range: refused below
            if kind is float:
                return float(value)
            if kind is int and float(value).is_integer():
                return int(value)
        if kind is str:
            return str(value)
    if kind is str and isinstance(value, str):
        return value
    raise SineError(f"--{name.replace('_', '-')} must be {_KIND_WORDS[kind]}, not {value!r}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML file of TrainConfig keys (a [train] table in TOML is accepted)."""
    path = Path(path)
    if not path.is_file():
        raise SineError(f"{path}: config file not found")
    try:
        if path.suffix.lower() == ".toml":
            values = tomllib.loads(path.read_text())
            values = values.get("train", values)
        else:
            values = json.loads(path.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SineError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(values, dict):
        raise SineError(f"{path}: expected a table of settings")
    return values
