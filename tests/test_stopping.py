"""The stopping rule on synthetic validation curves, and in the training loop."""

from __future__ import annotations

import pytest
import torch

from sine.data.split import leave_one_out
from trainer import fit as fit_module
from trainer.config import TrainConfig
from trainer.fit import fit
from trainer.models import build_encoder, model_config
from trainer.stopping import StoppingRule

DECLINE = StoppingRule(patience=10, decline=0.03, decline_epochs=2)


def test_patience_alone_counts_epochs_since_the_first_best():
    rule = StoppingRule(patience=3)
    assert not rule.should_stop([0.1, 0.2, 0.19, 0.19])
    assert rule.should_stop([0.1, 0.2, 0.19, 0.19, 0.2])  # a tie is not an improvement
    assert rule.stop_epoch([0.1, 0.2, 0.1, 0.1, 0.1, 0.3]) == 5


def test_an_early_peak_then_a_steady_fall_stops_two_epochs_after_it():
    curve = [0.050, 0.060, 0.066, 0.0645, 0.062, 0.060, 0.058, 0.056, 0.054, 0.052, 0.050, 0.048]
    # epoch 4 is within 3% of the best, 5 and 6 are further below: stop after 6
    assert DECLINE.stop_epoch(curve) == 6
    assert StoppingRule(patience=10).stop_epoch(curve) == 12


def test_small_dips_on_a_rising_curve_do_not_stop_it():
    curve = [0.03, 0.04, 0.045, 0.044, 0.0445, 0.05, 0.049, 0.0495, 0.055, 0.054, 0.056]
    assert DECLINE.stop_epoch(curve) == len(curve)
    assert not DECLINE.should_stop(curve)


def test_one_deep_dip_is_not_enough_when_two_are_asked_for():
    assert not DECLINE.should_stop([0.05, 0.06, 0.05])
    assert DECLINE.should_stop([0.05, 0.06, 0.05, 0.05])
    assert not DECLINE.should_stop([0.05, 0.06, 0.05, 0.059])  # the last is within 3%


def test_a_flat_curve_is_still_ended_by_patience():
    assert DECLINE.stop_epoch([0.05] + [0.0499] * 20) == 11


def test_decline_must_be_a_fraction():
    from sine.errors import SineError

    with pytest.raises(SineError, match="--stop-decline must be in"):
        TrainConfig(stop_decline=3.0)


@pytest.fixture(scope="module")
def tiny(synthetic_frame):
    return leave_one_out(synthetic_frame[synthetic_frame["user_id"].isin(
        synthetic_frame["user_id"].unique()[:60])])


def scripted(monkeypatch, scores):
    """The validation metric the loop sees, epoch after epoch."""
    it = iter(scores)
    monkeypatch.setattr(fit_module, "ranking_metrics",
                        lambda ranks: {"ndcg@10": next(it), "hr@10": 0.0, "hr@50": 0.0})


def small_config(**kw):
    return TrainConfig(model="sine", dim=8, prototypes=8, interests=2, batch_size=256, **kw)


def test_the_loop_stops_by_the_rule(tiny, monkeypatch):
    curve = [0.05, 0.06, 0.055, 0.054, 0.07, 0.08]
    config = small_config(epochs=6, patience=10, stop_decline=0.05, decline_epochs=2)
    scripted(monkeypatch, curve)
    encoder = build_encoder("sine", model_config(config, tiny.num_items))
    result = fit(encoder, tiny, config, torch.device("cpu"))
    assert (result.epochs, result.best_epoch) == (4, 2)
    scripted(monkeypatch, curve)
    result = fit(encoder, tiny, small_config(epochs=6, patience=10), torch.device("cpu"))
    assert (result.epochs, result.best_epoch) == (6, 6)


def test_a_warm_start_keeps_its_starting_weights_when_no_epoch_beats_them(tiny, monkeypatch):
    config = small_config(epochs=5, patience=2)
    encoder = build_encoder("sine", model_config(config, tiny.num_items))
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    scripted(monkeypatch, [0.3, 0.2, 0.1])
    result = fit(encoder, tiny, config, torch.device("cpu"), score_start=True)
    assert (result.epochs, result.best_epoch) == (2, 0)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in start.items())


def test_a_report_replays_to_itself_and_keeps_each_curves_epoch_limit(tmp_path, monkeypatch):
    """bench/stopping_replay.py --previous: an earlier report's curves give the same replay.

    A curve that ran out of epochs (recorded with --epochs 4) can be replayed under
    patience 10; read back from the report without its limit it would count as censored.
    """
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import stopping_replay as replay

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    history = [{"epoch": i + 1, "valid": {"ndcg@10": s}} for i, s in enumerate([0.1, 0.2, 0.3, 0.31])]
    (run / "metrics.json").write_text(json.dumps({
        "model": "sine", "seed": 0, "dataset": {"path": "x/toys.csv.gz"}, "history": history,
        "config": {"patience": 10, "epochs": 4}}))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    monkeypatch.setattr(sys, "argv", ["stopping_replay.py", str(run.parent), "--out", str(first)])
    replay.main()
    monkeypatch.setattr(sys, "argv", ["stopping_replay.py", "--previous", str(first), "--out", str(second)])
    replay.main()
    assert json.loads(second.read_text())["rules"] == json.loads(first.read_text())["rules"]
    assert json.loads(first.read_text())["rules"][replay.BASELINE]["replayed"] == 1
    old_style = json.loads(first.read_text())
    for curve in old_style["curves"]:
        del curve["max_epochs"], curve["patience"]
    first.write_text(json.dumps(old_style))
    assert replay.curves_from_report(first)[0]["max_epochs"] == 4
