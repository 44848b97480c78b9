"""Model registry: SINE and the baselines of the same harness."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from trainer.config import TrainConfig
from trainer.models.base import EncoderOutput, SequenceEncoder
from trainer.models.caser import Caser, CaserConfig
from trainer.models.gru4rec import GRU4Rec, GRU4RecConfig
from trainer.models.mcprn import MCPRN, MCPRNConfig
from trainer.models.mind import MIND, MINDConfig
from trainer.models.pop import MostPopular
from trainer.models.sasrec import SASRec, SASRecConfig
from trainer.models.sine import SINE, SINEConfig

ENCODERS: dict[str, tuple[type[SequenceEncoder], type]] = {
    "sine": (SINE, SINEConfig),
    "sasrec": (SASRec, SASRecConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
    "caser": (Caser, CaserConfig),
    "mind": (MIND, MINDConfig),
    "mcprn": (MCPRN, MCPRNConfig),
}


def model_config(config: TrainConfig, num_items: int) -> dict[str, Any]:
    """The architecture part of a TrainConfig, as the keyword arguments of its model."""
    if config.model == "sine":
        cfg: Any = SINEConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len,
            interests=config.interests, prototypes=config.prototypes, tau=config.tau,
            aggregation=config.aggregation, assignment_tau=config.assignment_tau,
            reg_weight=config.reg_weight, dropout=config.embedding_dropout,
            tied=config.tied_embeddings, label_aware=config.label_aware,
            label_power=config.label_power,
        )
    elif config.model == "sasrec":
        cfg = SASRecConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len, layers=config.layers,
            heads=config.heads, inner_dim=config.inner_dim, dropout=config.embedding_dropout,
            attention_dropout=config.attention_dropout,
        )
    elif config.model == "gru4rec":
        cfg = GRU4RecConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len, hidden=config.gru_hidden,
            layers=config.gru_layers, dropout=config.embedding_dropout,
        )
    elif config.model == "caser":
        cfg = CaserConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len,
            horizontal=config.caser_horizontal, vertical=config.caser_vertical,
            dropout=config.embedding_dropout, tied=config.tied_embeddings,
        )
    elif config.model == "mind":
        cfg = MINDConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len, interests=config.interests,
            routing_iterations=config.routing_iterations,
            dynamic_interests=config.dynamic_interests, attention_power=config.attention_power,
            dropout=config.embedding_dropout, tied=config.tied_embeddings,
        )
    elif config.model == "mcprn":
        cfg = MCPRNConfig(
            num_items=num_items, dim=config.dim, max_len=config.max_len, interests=config.interests,
            purpose_tau=config.purpose_tau, dropout=config.embedding_dropout,
            tied=config.tied_embeddings,
        )
    else:
        raise ValueError(f"{config.model} is not a neural encoder")
    return asdict(cfg)


def build_encoder(name: str, arch: dict[str, Any]) -> SequenceEncoder:
    """Instantiate encoder `name` from its architecture dict (as saved in a checkpoint)."""
    cls, cfg_cls = ENCODERS[name]
    return cls(cfg_cls(**arch))


__all__ = [
    "ENCODERS",
    "MCPRN",
    "MIND",
    "SINE",
    "Caser",
    "EncoderOutput",
    "GRU4Rec",
    "MostPopular",
    "SASRec",
    "SequenceEncoder",
    "build_encoder",
    "model_config",
]
