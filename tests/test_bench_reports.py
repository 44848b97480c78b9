"""Reports of bench/ scripts that put several runs side by side.

bench/accuracy.py's RecBole reference rows (issue 13): a reference figure must say where
it came from and when it was measured, and a run that a deadline or the epoch limit ended
must never stand as a reference. bench/warm_vs_cold.py --combine (issue 15): seeds of one
comparison only, with the warm-minus-cold differences computed per seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import accuracy
import pytest
import warm_vs_cold

METRICS = {"hit@10": 0.05, "hit@20": 0.08, "hit@50": 0.15, "ndcg@10": 0.02, "ndcg@20": 0.03,
           "ndcg@50": 0.04}


def _recbole_run(tmp_path: Path, name: str, *, seed: int, hit50: float, complete: bool) -> None:
    run = {"library": "recbole 1.2.1", "model": "SINE", "dataset": "beauty", "seed": seed,
           "threads": 1, "patience": 10, "measured_at": "2026-11-28 09:00 UTC",
           "epochs": 30 if complete else 7, "best_epoch": 20 if complete else 7,
           "ended_by": "early stopping" if complete else "deadline", "complete": complete,
           "test_history_kept": {**METRICS, "hit@50": hit50}}
    (tmp_path / name).write_text(json.dumps(run))


def _ours() -> dict:
    return {"runs": {"beauty/sine/seed0": {
        "dataset": "beauty", "model": "sine", "seed": 0, "tag": "", "epochs": 14, "best_epoch": 4,
        "complete": True,
        "test": {m: 0.1 for m in accuracy.ORDER}, "test_history_kept": {m: 0.1 for m in accuracy.ORDER}}}}


def test_measured_reference_replaces_the_copied_one_and_says_when(tmp_path: Path) -> None:
    _recbole_run(tmp_path, "beauty-sine-seed0.json", seed=0, hit50=0.16, complete=True)
    _recbole_run(tmp_path, "beauty-sine-seed1.json", seed=1, hit50=0.18, complete=True)
    table = accuracy.markdown(_ours(), accuracy.recbole_measured(tmp_path))
    rows = [line for line in table.splitlines() if "RecBole 1.2.1 sine" in line]
    assert len(rows) == 1, rows
    assert "measured 2026-11-28" in rows[0] and "n=2" in rows[0]
    assert "0.1700 ± 0.0141" in rows[0]  # mean and sample sd of 0.16 and 0.18 (HR@50)
    assert "issue #2" not in rows[0]


def test_a_capped_reference_run_is_listed_and_never_shown_as_the_reference(tmp_path: Path) -> None:
    _recbole_run(tmp_path, "beauty-sine-seed0.json", seed=0, hit50=0.16, complete=True)
    _recbole_run(tmp_path, "beauty-sine-seed1.json", seed=1, hit50=0.99, complete=False)
    table = accuracy.markdown(_ours(), accuracy.recbole_measured(tmp_path))
    row = next(line for line in table.splitlines() if "RecBole 1.2.1 sine" in line)
    assert "n=1" in row and "0.1600" in row and "0.99" not in row
    assert "RecBole 1.2.1 beauty/sine/seed1: ended by deadline after 7 epochs" in table


def test_without_a_measurement_the_copied_figure_says_it_was_not_measured(tmp_path: Path) -> None:
    table = accuracy.markdown(_ours(), accuracy.recbole_measured(tmp_path))
    row = next(line for line in table.splitlines() if "RecBole 1.2.1 sine" in line)
    assert "reported in issue #2, not measured here" in row and "0.1595" in row


def _night(seed: int, cold: float, warm: float, settings: dict | None = None) -> dict:
    entry = {"valid_hr@10": 0.1, "test_ndcg@10": 0.04, "epochs": 8, "best_epoch": 4, "train_examples": 10,
             "train_seconds": 100.0}
    return {"dataset": "video", "users": 10000, "seed": seed, "threads": 1,
            "settings": settings or {"patience": 5}, "load_average_before": [1.0, 1.0, 1.0],
            "cold candidate": {**entry, "valid_ndcg@10": cold},
            "warm candidate": {**entry, "valid_ndcg@10": warm, "epochs": 2, "train_seconds": 15.0}}


def test_seeds_combine_into_per_seed_differences_and_their_spread() -> None:
    combined = warm_vs_cold.combine([_night(1, 0.0508, 0.0516), _night(0, 0.0500, 0.0542)])
    assert [row["seed"] for row in combined["seeds"]] == [0, 1]
    assert combined["difference_mean"] == pytest.approx(0.0025)  # (0.0042 + 0.0008) / 2
    assert combined["difference_sd"] == pytest.approx(0.0024042, abs=1e-6)
    assert combined["warm_at_least_cold"] == 2
    assert "warm at least cold on 2 of 2 seeds" in warm_vs_cold.combined_markdown(combined)


def test_reports_of_other_settings_or_a_repeated_seed_are_refused() -> None:
    with pytest.raises(SystemExit, match="settings"):
        warm_vs_cold.combine([_night(0, 0.05, 0.05), _night(1, 0.05, 0.05, {"patience": 3})])
    with pytest.raises(SystemExit, match="seed twice"):
        warm_vs_cold.combine([_night(0, 0.05, 0.05), _night(0, 0.05, 0.06)])


def test_combine_names_a_file_that_is_not_one_seeds_report(tmp_path: Path) -> None:
    combined = tmp_path / "seeds.json"
    combined.write_text(json.dumps(warm_vs_cold.combine([_night(0, 0.05, 0.05), _night(1, 0.05, 0.06)])))
    with pytest.raises(SystemExit, match="seeds.json: a combined report"):
        warm_vs_cold.read_night(combined)
    with pytest.raises(SystemExit, match="missing.json: cannot read it"):
        warm_vs_cold.read_night(tmp_path / "missing.json")


def test_stopping_replay_refuses_a_path_without_curves(tmp_path: Path) -> None:
    import stopping_replay

    with pytest.raises(SystemExit, match="no such file"):
        stopping_replay.curves_from([tmp_path / "typo"])
    with pytest.raises(SystemExit, match="no recorded validation curve"):
        stopping_replay.curves_from([tmp_path])


class _FakeRecBoleTrainer:
    """RecBole 1.2.1's Trainer.fit as far as _train_to_stop sees it: early_stopping counts
    non-improving epochs (a tie improves), stops once the count exceeds stopping_step, and
    calls callback_fn after that test."""

    def __init__(self, scores: list[float], stopping_step: int):
        self.scores, self.stopping_step = scores, stopping_step
        self.cur_step, self.best_valid_result = 0, None

    def fit(self, train_data, valid_data, saved, show_progress, callback_fn):
        best = -1.0
        for epoch, score in enumerate(self.scores):
            if score >= best:
                best, self.cur_step = score, 0
            else:
                self.cur_step += 1
            stop = self.cur_step > self.stopping_step
            callback_fn(epoch, score)
            if stop:
                break

    def evaluate(self, test_data, load_best_model):
        return dict(METRICS)


def _recbole_args(**kw):
    import argparse

    return argparse.Namespace(**{"epochs": 50, "patience": 3, "deadline_s": 0, **kw})


def test_recbole_patience_counts_as_ours_and_the_tested_epoch_is_the_last_tied_best() -> None:
    import recbole_reference

    scores = [0.1, 0.3, 0.2, 0.3, 0.25, 0.2, 0.1, 0.05]  # best 0.3 at epochs 2 and 4 (tie)
    args = _recbole_args(patience=3)
    trainer = _FakeRecBoleTrainer(scores, recbole_reference.stopping_step(args.patience))
    run = recbole_reference._train_to_stop(trainer, None, None, None, args)
    assert run["epochs"] == 7  # 3 epochs without improvement after epoch 4, as our patience 3
    assert run["best_epoch"] == 4 and run["ended_by"] == "early stopping" and run["complete"]


def test_recbole_run_ended_by_its_epoch_limit_or_deadline_is_incomplete() -> None:
    import recbole_reference

    rising = [0.1, 0.2, 0.3, 0.4]
    args = _recbole_args(epochs=4)
    run = recbole_reference._train_to_stop(_FakeRecBoleTrainer(rising, 2), None, None, None, args)
    assert run["ended_by"] == "epoch limit" and not run["complete"]
    args = _recbole_args(deadline_s=1e-9)
    run = recbole_reference._train_to_stop(_FakeRecBoleTrainer(rising, 2), None, None, None, args)
    assert run["ended_by"] == "deadline" and run["epochs"] == 1 and not run["complete"]
    # the deadline passing in the very epoch where early stopping ends the run: early
    # stopping decided it (the deadline is only noticed after RecBole's own test)
    args = _recbole_args(patience=1)
    trainer = _FakeRecBoleTrainer([0.3, 0.2, 0.1], 0)  # patience 1: stops after epoch 2
    real_fit = trainer.fit

    def fit_with_deadline_at_epoch_2(*a, callback_fn, **kw):
        def callback(epoch, score):
            args.deadline_s = 1e-9 if epoch == 1 else 0
            callback_fn(epoch, score)
        real_fit(*a, callback_fn=callback, **kw)

    trainer.fit = fit_with_deadline_at_epoch_2
    run = recbole_reference._train_to_stop(trainer, None, None, None, args)
    assert run["epochs"] == 2 and run["ended_by"] == "early stopping" and run["complete"]


def test_reference_runs_of_other_settings_get_their_own_rows(tmp_path: Path) -> None:
    _recbole_run(tmp_path, "beauty-sine-seed0.json", seed=0, hit50=0.16, complete=True)
    other = json.loads((tmp_path / "beauty-sine-seed0.json").read_text())
    (tmp_path / "beauty-sine-seed1.json").write_text(json.dumps({**other, "seed": 1, "patience": 3}))
    (tmp_path / "beauty-caser-seed0.json").write_text(json.dumps({**other, "model": "Caser"}))
    table = accuracy.markdown(_ours(), accuracy.recbole_measured(tmp_path))
    sine_rows = [line for line in table.splitlines() if "RecBole 1.2.1 sine" in line]
    assert len(sine_rows) == 2 and all("n=1" in row for row in sine_rows)
    assert any("patience 3" in row for row in sine_rows) and any("patience 10" in row for row in sine_rows)
    assert sum("RecBole 1.2.1 caser" in line for line in table.splitlines()) == 1  # shown without ours


def test_a_reference_is_shown_when_we_ran_that_model_only_as_a_variant(tmp_path: Path) -> None:
    _recbole_run(tmp_path, "beauty-sine-seed0.json", seed=0, hit50=0.16, complete=True)
    ours = _ours()
    ours["runs"]["beauty/sine/seed0"]["tag"] = "dropout0.2"
    table = accuracy.markdown(ours, accuracy.recbole_measured(tmp_path))
    assert sum("RecBole 1.2.1 sine (measured" in line for line in table.splitlines()) == 1


def _grid_record(key: str, settings: dict) -> str:
    dataset, model, seed = key.split("/")
    figures = {"hr@20": 0.3, "hr@50": 0.5, "ndcg@20": 0.13, "ndcg@50": 0.17}
    return json.dumps({"schema": 1, "key": key, "dataset": dataset, "model": model,
                       "seed": int(seed.removeprefix("seed")), "settings": settings,
                       "status": "finished", "complete": True, "epochs": 9, "best_epoch": 6,
                       "wall_seconds": 60.0, "test": figures, "test_history_kept": figures})


def test_a_grid_refuses_to_resume_a_file_of_other_settings(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    """paper_table (issue 13) skips the runs its file holds: resumed with another patience it
    would have averaged two protocols under one heading; it must stop and say so."""
    import paper_table

    (tmp_path / "tiny.csv.gz").write_bytes(b"")  # only checked for existence before the refusal
    out = tmp_path / "table.jsonl"
    recorded = dict(paper_table.BASE, device="cuda", threads=8, epochs=30, patience=3, model="sine")
    out.write_text(_grid_record("tiny/sine/seed0", recorded) + "\n")
    argv = ["paper_table.py", "--data", str(tmp_path), "--datasets", "tiny", "--models", "sine",
            "--seeds", "0", "--out", str(out), "--logs", str(tmp_path / "logs")]
    monkeypatch.setattr(sys, "argv", [*argv, "--patience", "10"])
    with pytest.raises(SystemExit) as refused:
        paper_table.main()
    message = str(refused.value)
    assert "tiny/sine/seed0" in message and "patience=3" in message and "patience=10" in message
    # the same settings on another device and thread count: nothing to run, no refusal
    monkeypatch.setattr(sys, "argv", [*argv, "--device", "cpu", "--threads", "1"])
    paper_table.main()
    assert "1 of 1 recorded runs complete" in capsys.readouterr().out


def test_the_paper_table_times_runs_per_machine() -> None:
    """Jobs ran up to 3.1x faster on one 2-core host than on another at a similar load, and
    1.4-4.8x apart per epoch on VMs with the same processor label: a mean over both would
    describe neither. The time table gives one row per processor and boot (runs from before either was
    recorded apart), each with its seeds and the load range."""
    import paper_table

    settings = dict(paper_table.BASE, epochs=30, patience=3, model="sine")
    runs = [json.loads(_grid_record(f"tiny/sine/seed{seed}", settings)) for seed in range(4)]
    runs[0].update(wall_seconds=1600.0, load_average=2.9)  # from before "cpu" was recorded
    runs[1].update(wall_seconds=500.0, load_average=2.01, cpu="AMD EPYC")
    runs[2].update(wall_seconds=540.0, load_average=2.24, cpu="AMD EPYC")
    runs[3].update(wall_seconds=830.0, load_average=2.05, cpu="AMD EPYC", boot="3d1219c7")
    table = paper_table.markdown(paper_table.summarise(runs))
    start = table.splitlines().index("| --- | --- | ---: | --- | ---: | --- | --- | ---: | ---: |")
    rows = table.splitlines()[start + 1:start + 4]
    assert rows == ["| tiny | sine | 4 | 0,1,2,3 | 9 (6) | AMD EPYC | 1,2 | 520 | 2.0-2.2 |",
                    "| | | | | | AMD EPYC, boot 3d1219c7 | 3 | 830 | 2.0 |",
                    "| | | | | | not recorded | 0 | 1600 | 2.9 |"]
    record = paper_table.decorate({"status": "finished", "epochs": 3, "best_epoch": 1}, 30, 3)
    assert record.get("boot") == paper_table.boot_id()
    assert paper_table.machine({"cpu": "AMD EPYC", "device": "cuda"}) == "cuda (host AMD EPYC)"


def _grid(tmp_path: Path, monkeypatch, *extra: str) -> None:
    """paper_table.main on a file of tmp_path with the given arguments."""
    import paper_table

    argv = ["paper_table.py", "--data", str(tmp_path), "--out", str(tmp_path / "table.jsonl"),
            "--logs", str(tmp_path / "logs"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    paper_table.main()


def test_a_resumed_grid_reruns_only_what_the_protocol_did_not_end(tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    """A run capped at the epoch limit is the protocol's own outcome (the same seed would end
    there again): a resumed grid skips it, as it skips complete runs, and reruns a run a
    deadline stopped. Rerunning the capped one cost hours and replaced its figures with
    "not_started" when the deadline came first."""
    import paper_table

    (tmp_path / "tiny.csv.gz").write_bytes(b"")
    settings = dict(paper_table.BASE, device="cpu", threads=1, epochs=30, patience=3, model="sine")
    runs = [json.loads(_grid_record(f"tiny/sine/seed{seed}", settings)) for seed in range(3)]
    runs[1].update(status=paper_table.CAPPED_MAX_EPOCHS, complete=False, capped=True)
    runs[2].update(status="deadline", complete=False, capped=True)
    (tmp_path / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "sine", "--seeds", "0", "1",
          "2", "3", "--dry-run")
    assert capsys.readouterr().out.split() == ["tiny/sine/seed2", "tiny/sine/seed3"]


@pytest.mark.parametrize(("extra", "message"), [
    # a new seed of a model the file holds, at another D: its cell would average both
    (["--models", "sine", "--seeds", "5", "--set", "dim=32"],
     "holds tiny/sine/seed0, trained with dim=64; this command asks for sine with dim=32"),
    # a model the file does not hold yet, at another patience: the table's header would lie
    (["--models", "gru4rec", "--patience", "5"],
     "holds tiny/sine/seed0, trained with patience=3; this command asks for gru4rec with patience=5"),
    # a variant's own settings are its own, but not two versions of them under one name
    (["--models", "sine-k2:model=sine,interests=2", "--seeds", "4"],
     "holds tiny/sine-k2/seed0, trained with interests=1; this command asks for sine-k2 with "
     "interests=2"),
    (["--datasets", "other", "--models", "sine-k2:model=sine,interests=2"],
     "holds tiny/sine-k2/seed0, trained with interests=1; this command asks for sine-k2 with "
     "interests=2"),
    (["--models", "sine", "--set", "dimm=32"],
     "the settings of every run (--set): unknown configuration key(s): dimm"),
    (["--models", "sine-x:model=sine,dimm=32"], "sine-x: unknown configuration key(s): dimm"),
    # a value of the wrong type was a TypeError traceback from TrainConfig's validation
    (["--models", "sine", "--set", "dim=abc"],
     "the settings of every run (--set): --dim must be an integer, not 'abc'"),
    # every model's own interests=1 hides a bad --set interests from the models' check
    (["--models", "mind-k1:model=mind,interests=1", "--set", "interests=abc"],
     "the settings of every run (--set): --interests must be an integer, not 'abc'"),
    (["--models", "sine", "--set", "dim"], "'dim': expected KEY=VALUE (e.g. dim=64)"),
    # a plain model's name with settings of its own: say so, and how to name the variant
    (["--models", "sine:interests=2"],
     "trained with interests unset (default 4); this command asks for sine with interests=2. "
     "One file holds one protocol: give the recorded settings to extend it, or --out for a new "
     "one. A variant needs a name of its own: sine-x:model=sine,interests=2."),
])
def test_a_grid_refuses_another_protocol_in_the_same_file(tmp_path: Path, monkeypatch, extra,
                                                          message) -> None:
    import paper_table

    for name in ("tiny", "other"):
        (tmp_path / f"{name}.csv.gz").write_bytes(b"")
    settings = dict(paper_table.BASE, device="cpu", threads=1, epochs=30, patience=3)
    (tmp_path / "table.jsonl").write_text(
        _grid_record("tiny/sine/seed0", {**settings, "model": "sine"}) + "\n"
        + _grid_record("tiny/sine-k2/seed0", {**settings, "model": "sine", "interests": 1}) + "\n")
    with pytest.raises(SystemExit) as refused:
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", *extra)  # a later --datasets wins
    assert message in str(refused.value)
    # the variant's own setting is no protocol change: it runs beside the plain model
    _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "sine",
          "sine-k2:model=sine,interests=1", "--seeds", "0", "1", "--dry-run")


def test_grid_arguments_that_cannot_work_are_refused_with_what_to_give(tmp_path: Path,
                                                                       monkeypatch, capsys) -> None:
    """--jobs 0 queued every run and started none, forever; --dry-run beside --summary-only
    was ignored and the table rewritten; a mistyped dataset said only "not found"."""
    (tmp_path / "tiny.csv.gz").write_bytes(b"")
    for extra, message in ((["--jobs", "0", "--dry-run"], "argument --jobs: at least 1 (runs at a time)"),
                           (["--jobs", "two", "--dry-run"], "argument --jobs: 'two' is not a whole number"),
                           (["--summary-only", "--dry-run"],
                            "argument --dry-run: not allowed with argument --summary-only")):
        with pytest.raises(SystemExit) as refused:
            _grid(tmp_path, monkeypatch, "--datasets", "tiny", *extra)
        assert refused.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match=f"{tmp_path} holds tiny$"):
        _grid(tmp_path, monkeypatch, "--datasets", "tinny", "--dry-run")
    with pytest.raises(SystemExit, match="--datasets names tiny twice"):
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", str(tmp_path / "tiny.csv.gz"),
              "--dry-run")
    # one key asked for twice: both runs wrote it, and the failed one superseded the other
    for extra in (["--models", "pop", "pop:dim=16", "--seeds", "0"],
                  ["--models", "pop", "--seeds", "0", "0"]):
        with pytest.raises(SystemExit, match="tiny/pop/seed0: asked for twice"):
            _grid(tmp_path, monkeypatch, "--datasets", "tiny", *extra, "--dry-run")
    with pytest.raises(SystemExit, match="seed: each run's seed comes from --seeds"):
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "pop", "--set", "seed=3",
              "--dry-run")
    with pytest.raises(SystemExit, match="--lr must be a number, not 'abc'"):  # --set repeated
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "pop", "--set", "lr=abc",
              "--set", "dim=64", "--dry-run")
    import sensitivity  # its --only took a name not in the grid as a KeyError traceback

    monkeypatch.setattr(sys, "argv", ["sensitivity.py", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "s.jsonl"), "--only", "K=8", "nope"])
    with pytest.raises(SystemExit, match="--only nope: not in the grid, which has default, K=8"):
        sensitivity.main()
    with pytest.raises(SystemExit, match="missing is not a folder$"):
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--data", str(tmp_path / "missing"),
              "--dry-run")


def test_settings_are_compared_as_the_runs_take_them(tmp_path: Path, monkeypatch, capsys) -> None:
    """"64" and 64.0 are dim 64 and an unset key is its default, so neither is another
    protocol; a refused plain name with settings of its own is told a variant spec it can
    paste back (true, not Python's True), and only when that name is the one refused."""
    (tmp_path / "tiny.csv.gz").write_bytes(b"")
    import paper_table

    settings = dict(paper_table.BASE, device="cpu", threads=1, epochs=30, patience=3)
    (tmp_path / "table.jsonl").write_text(
        _grid_record("tiny/sine/seed0", {**settings, "model": "sine"}) + "\n")
    _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "sine:interests=4",
          "--set", 'dim="64"', "batch_size=256.0", "--seeds", "0", "1", "--dry-run")
    assert capsys.readouterr().out.split() == ["tiny/sine/seed1"]
    with pytest.raises(SystemExit) as refused:
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "sine:label_aware=true",
              "--dry-run")
    assert str(refused.value).endswith("A variant needs a name of its own: "
                                       "sine-x:model=sine,label_aware=true.")
    _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models",
          "sine-x:model=sine,label_aware=true", "--dry-run")  # the advice, pasted back, runs
    with pytest.raises(SystemExit) as refused:  # gru4rec differs from sine's run in dim only
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "gru4rec:gru_layers=2",
              "--set", "dim=32", "--dry-run")
    assert "trained with dim=64" in str(refused.value)
    assert "A variant needs" not in str(refused.value)
    with pytest.raises(SystemExit) as refused:  # interests=4 is sine's default: dim is the change
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "sine:interests=4",
              "--set", "dim=32", "--dry-run")
    assert "trained with dim=64" in str(refused.value)
    assert "A variant needs" not in str(refused.value)
    import sine_variants

    assert sine_variants.parse_variant("x:dim=32,") == ("x", {"model": "sine", "dim": 32})


def test_the_table_states_the_protocol_its_runs_recorded(tmp_path: Path) -> None:
    """The header's settings come from the records (they said D = 64 whatever the file held),
    each variant says what it changes, and a run stopped before its first epoch shows no
    figures: they would be an untrained model's."""
    import paper_table

    settings = dict(paper_table.BASE, device="cpu", threads=1, epochs=20, patience=4, dim=32)
    runs = [json.loads(_grid_record("tiny/sine/seed0", {**settings, "model": "sine"})),
            json.loads(_grid_record("tiny/mind-k1/seed0", {**settings, "model": "mind",
                                                           "interests": 1})),
            json.loads(_grid_record("tiny/sine/seed1", {**settings, "model": "sine"}))]
    runs[2].update(status="capped", complete=False, capped=True, epochs=0, best_epoch=0)
    table = paper_table.markdown(paper_table.summarise(runs))
    assert ("Settings: D = 32, n = 20, full softmax, batch 256, fp32, Adam 0.001, early stopping "
            "on validation NDCG@10 with patience 4, at most 20 epochs") in table
    assert "`mind-k1`: model=mind, interests=1." in table
    assert "| tiny/sine/seed1 | capped | 0 (0) | untrained | - | - |" in table


def test_summary_only_refuses_what_is_not_a_file_of_runs(tmp_path: Path, monkeypatch) -> None:
    """--summary-only on the .md, a typo'd path or a foreign JSONL wrote an empty table over
    the committed one, with exit status 0."""
    table = tmp_path / "table.md"
    table.write_text("the committed table\n")
    for out, message in ((table, "name the .jsonl file of runs"),
                         (tmp_path / "typo.jsonl", "no such file")):
        with pytest.raises(SystemExit, match=message):
            _grid(tmp_path, monkeypatch, "--summary-only", "--out", str(out))
    (tmp_path / "table.jsonl").write_text('{"garbage": 1}\n')
    with pytest.raises(SystemExit, match="record 1 of 1 is not a run of bench/paper_table.py"):
        _grid(tmp_path, monkeypatch, "--summary-only")
    assert table.read_text() == "the committed table\n"


def test_a_grid_whose_runs_fail_exits_with_an_error(tmp_path: Path, monkeypatch) -> None:
    """A failed run is recorded and the grid goes on, but the command must not report success;
    the workers' scratch folder goes away with the grid."""
    import tempfile

    (tmp_path / "tiny.csv.gz").write_bytes(b"")  # not a log: the run fails loading it
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(SystemExit, match=r"1 of 1 runs failed \(tiny/pop/seed0\)"):
        _grid(tmp_path, monkeypatch, "--datasets", "tiny", "--models", "pop", "--seeds", "0",
              "--jobs", "1")
    assert json.loads((tmp_path / "table.jsonl").read_text())["status"] == "failed"
    assert list(scratch.iterdir()) == []


def test_a_resumed_variant_grid_compares_each_cell_with_its_own_runs() -> None:
    """bench/sine_variants.py and bench/sensitivity.py average per dataset and variant: a new
    seed at another patience joins a cell of the old runs, so it is refused; another dataset
    may have its own (the committed variants file trained ml-100k to patience 5)."""
    import sine_variants

    held = {"beauty/cosine/seed0": {"key": "beauty/cosine/seed0",
                                    "settings": {"model": "sine", "patience": 3}}}
    base = {"patience": 5}
    new_seed = sine_variants.Job("beauty", Path("b"), "cosine", 1, {"model": "sine"})
    with pytest.raises(SystemExit, match="holds beauty/cosine/seed0, trained with patience=3; "
                                         "this command asks for beauty/cosine/seed1 with patience=5"):
        sine_variants.jobs_to_run(held, [new_seed], base, Path("out.jsonl"))
    other = sine_variants.Job("ml-100k", Path("m"), "cosine", 0, {"model": "sine"})
    assert sine_variants.jobs_to_run(held, [other], base, Path("out.jsonl")) == [other]


def test_a_grid_started_in_the_background_still_stops_its_runs_at_the_deadline(
        tmp_path: Path) -> None:
    """A shell's background job starts with SIGINT ignored, and spawned runs inherited that:
    the deadline's SIGINT did nothing, every run was killed after the grace period and lost
    its figures. The grid restores SIGINT, so the run ends at its best epoch so far."""
    import signal
    import subprocess

    from sine.data.synthetic import SyntheticSpec, synthetic_log

    synthetic_log(SyntheticSpec(num_users=300, num_items=200)).to_csv(
        tmp_path / "synth.csv.gz", index=False)
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "table.jsonl"
    subprocess.run(
        [sys.executable, str(root / "bench" / "paper_table.py"), "--data", str(tmp_path),
         "--datasets", "synth", "--models", "sine", "--seeds", "0", "--epochs", "100000",
         "--patience", "100000", "--jobs", "1", "--deadline-s", "25", "--min-start-s", "0",
         "--grace-s", "60", "--out", str(out), "--logs", str(tmp_path / "logs")],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), check=True,
        capture_output=True, timeout=300)
    record = json.loads(out.read_text())
    assert record["status"] == "deadline" and record["best_epoch"] >= 1, record
