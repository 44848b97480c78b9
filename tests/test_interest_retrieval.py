"""bench/interest_retrieval.py's multi-seed aggregation, on hand-made per-run figures (no training).

The benchmark's markdown is read as a mean over seeds; these tests pin what that mean is:
every column averaged with the sample sd, the relative "vs aggregate" taken within each run
before averaging, capped and interrupted runs kept out, and one run shown without a spread.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import interest_retrieval as ir

DEFAULT = ir.default_variant(0.5)


def _run(seed: int, aggregate: float, default: float, genres: tuple[float, float] | None = None,
         **marks) -> dict:
    """One run's entry as `evaluate_run` writes it: HR@50 (and top-20 genres) of two variants."""
    variants = {"aggregate": {"hr@50": aggregate}, DEFAULT: {"hr@50": default}}
    if genres is not None:
        for name, distinct in zip(variants, genres, strict=True):
            variants[name].update(top20_distinct_genres=distinct, top20_history_genre_coverage=distinct / 20,
                                  top20_genre_miscalibration=1 / distinct)
    return {"run": f"runs/ir/s{seed}", "seed": seed, "users": 943, "epochs": 20, "best_epoch": 12,
            "capped": False, "interrupted": False,
            "training": {"dim": 128, "interests": 4, "prototypes": 500, "tau": 0.1},
            "trainer_hr@50_history_kept": aggregate,
            "interests": {"mean_pairwise_cosine": 0.7 + seed / 100, "mean_top_weight": 0.4,
                          "mean_top_click_share": 0.3, "interests": 4},
            "variants": ir.relative_to_aggregate(variants), **marks}


def _report(runs: list[dict]) -> dict:
    summary = ir.summarise(runs)
    return {"default_interest_diversity": 0.5,
            "datasets": {"ml-100k": {"runs": runs, "summary": summary, "targets": ir.targets(summary, DEFAULT)}}}


def test_mean_and_sample_sd_of_every_column():
    runs = [_run(0, 0.40, 0.38, (11.0, 12.0)), _run(1, 0.42, 0.41, (11.5, 13.0)),
            _run(2, 0.44, 0.43, (12.0, 14.5))]
    summary = ir.summarise(runs)
    assert summary["n"] == 3 and summary["seeds"] == [0, 1, 2] and summary["excluded"] == []
    row = summary["variants"][DEFAULT]
    assert set(row) == set(ir.COLUMNS)
    for column in ir.COLUMNS:
        values = [r["variants"][DEFAULT][column] for r in runs]
        assert row[column]["mean"] == pytest.approx(statistics.mean(values))
        assert row[column]["sd"] == pytest.approx(statistics.stdev(values))  # n - 1, not n
    assert row["hr@50"]["sd"] == pytest.approx(0.025166, abs=1e-6)  # stdev(0.38, 0.41, 0.43)
    cosine = summary["interests"]["mean_pairwise_cosine"]
    assert cosine["mean"] == pytest.approx(0.71) and cosine["sd"] == pytest.approx(0.01)
    assert summary["trainer_hr@50_history_kept"]["mean"] == pytest.approx(0.42)


def test_vs_aggregate_is_each_runs_own_change_averaged():
    # run A: 0.3 / 0.2 = +50%; run B: 0.4 / 0.4 = +0%. Mean of the changes +25%; the change of
    # the means (0.35 / 0.30 = +16.7%) would let the seed with the high aggregate weigh more.
    summary = ir.summarise([_run(0, 0.2, 0.3), _run(1, 0.4, 0.4)])
    change = summary["variants"][DEFAULT]["hr@50_vs_aggregate"]
    assert change["mean"] == pytest.approx(0.25)
    assert change["sd"] == pytest.approx(statistics.stdev([0.5, 0.0]))
    assert summary["variants"]["aggregate"]["hr@50_vs_aggregate"] == {"mean": 0.0, "sd": 0.0}


def test_one_run_has_no_spread_and_its_markdown_no_plus_minus():
    runs = [_run(0, 0.4115, 0.3934, (11.30, 11.35))]
    summary = ir.summarise(runs)
    assert summary["n"] == 1
    assert all(stat["sd"] is None for stat in summary["variants"][DEFAULT].values())
    text = ir.markdown(_report(runs))
    assert "±" not in text.split("\n", 1)[1]  # the header explains ±; no figure carries one
    assert "n=1 run, no spread" in text
    assert f"| {DEFAULT} | 0.3934 | -4.4% | 11.35 | +0.4% |" in text


def test_several_runs_show_mean_plus_minus_sd_and_n():
    text = ir.markdown(_report([_run(0, 0.40, 0.38, (11.0, 12.0)), _run(1, 0.42, 0.41, (11.5, 13.0)),
                                _run(2, 0.44, 0.43, (12.0, 14.5))]))
    assert "n=3 runs averaged, mean ± sample sd" in text and "| retrieval (n=3) |" in text
    assert f"| {DEFAULT} | 0.4067 ± 0.0252 |" in text
    for seed in range(3):
        assert f"- seed {seed}: run runs/ir/s{seed}, 20 epochs (best 12)" in text


def test_capped_and_interrupted_runs_are_listed_not_averaged():
    runs = [_run(0, 0.40, 0.38), _run(1, 0.42, 0.41), _run(2, 0.44, 0.43),
            _run(3, 0.10, 0.30, capped=True), _run(4, 0.20, 0.05, interrupted=True)]
    summary = ir.summarise(runs)
    assert summary["n"] == 3 and summary["seeds"] == [0, 1, 2]
    assert summary["excluded"] == [{"run": "runs/ir/s3", "seed": 3, "reason": "capped"},
                                   {"run": "runs/ir/s4", "seed": 4, "reason": "interrupted"}]
    assert summary["variants"][DEFAULT]["hr@50"]["mean"] == pytest.approx(statistics.mean([0.38, 0.41, 0.43]))
    text = ir.markdown(_report(runs))
    assert "- seed 3: run runs/ir/s3" in text
    assert "CAPPED (fewer epochs than the defaults), listed, not averaged" in text
    assert "INTERRUPTED (training stopped early), listed, not averaged" in text


def test_a_dataset_with_only_a_capped_run_shows_it_alone_marked():
    runs = [_run(0, 0.1801, 0.1805, capped=True)]
    assert ir.summarise(runs)["n"] == 0
    text = ir.markdown(_report(runs))
    assert "**ml-100k** (CAPPED: fewer epochs than the defaults)" in text
    assert f"| {DEFAULT} | 0.1805 | +0.2% |" in text and "this run alone (CAPPED" in text


def test_targets_are_judged_on_the_mean():
    # HR@50 changes -8%, -2%, -1%: one run misses the 5% target, the mean (-3.7%) meets it.
    # Genres +10%, +20%, +25%: two runs meet +20%, the mean (+18.3%) does not.
    runs = [_run(0, 0.50, 0.46, (10.0, 11.0)), _run(1, 0.50, 0.49, (10.0, 12.0)),
            _run(2, 0.50, 0.495, (10.0, 12.5))]
    result = ir.targets(ir.summarise(runs), DEFAULT)
    assert result["hr@50_vs_aggregate"]["met"] and result["hr@50_vs_aggregate"]["mean"] == pytest.approx(-0.11 / 3)
    assert not result["genres_vs_aggregate"]["met"]
    line = ir.target_line(result)
    assert "by the mean of n=3" in line
    assert "HR@50 vs aggregate -3.7% ± 3.8%, target within 5% or better: **met**" in line
    assert "top-20 distinct genres vs aggregate +18.3% ± 7.6%, target +20% or more: **not met**" in line
    assert "no genres for this dataset" in ir.target_line(ir.targets(ir.summarise([_run(0, 0.5, 0.5)]), DEFAULT))


def test_runs_grouped_by_dataset_and_capped_by_dataset_or_run():
    runs = ir.parse_runs(["ml-100k=a", "beauty=b0", "ml-100k=c", "beauty=b1"], ["ml-100k", "b1"])
    assert runs == {"ml-100k": [("a", True), ("c", True)], "beauty": [("b0", False), ("b1", True)]}
    assert ir.parse_runs(["ml-100k=a"], []) == {"ml-100k": [("a", False)]}  # one run, as before


@pytest.mark.parametrize(("specs", "capped", "message"), [
    (["ml-100k"], [], "expected DATASET=RUN_DIR"),
    (["ml-100k=a", "ml-100k=./a"], [], "given twice"),
    (["ml-100k=a"], ["beuaty"], "neither a dataset nor a RUN_DIR"),
])
def test_bad_run_arguments_are_refused(specs, capped, message):
    with pytest.raises(ValueError, match=message):
        ir.parse_runs(specs, capped)


def test_runs_averaged_together_must_be_seeds_of_one_configuration():
    train = {"dim": 128, "interests": 4, "prototypes": 500, "tau": 0.1}
    ir.check_runs("ml-100k", {"a": {**train, "seed": 0}, "b": {**train, "seed": 1}}, ["a", "b"])
    with pytest.raises(ValueError, match="differ in model settings"):
        ir.check_runs("ml-100k", {"a": {**train, "seed": 0}, "b": {**train, "interests": 8, "seed": 1}}, ["a", "b"])
    with pytest.raises(ValueError, match="differ in model settings.*attention_power"):  # any model setting
        ir.check_runs("ml-100k", {"a": {**train, "seed": 0, "attention_power": 1.0},
                                  "b": {**train, "seed": 1, "attention_power": 2.0}}, ["a", "b"])
    ir.check_runs("ml-100k", {"a": {**train, "seed": 0, "threads": 1},  # not a model setting
                              "b": {**train, "seed": 1, "threads": 2}}, ["a", "b"])
    with pytest.raises(ValueError, match="both have seed 0"):
        ir.check_runs("ml-100k", {"a": {**train, "seed": 0}, "b": {**train, "seed": 0}}, ["a", "b"])
    ir.check_runs("ml-100k", {"a": {**train, "seed": 0}, "b": {**train, "seed": 0}}, ["a"])  # b capped: listed


def test_cli_reports_a_bad_run_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["interest_retrieval.py", "--run", "ml-100k"])
    with pytest.raises(SystemExit) as exit_:
        ir.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected DATASET=RUN_DIR" in err and "Traceback" not in err


def test_cli_names_a_missing_directory_and_a_run_of_another_model(monkeypatch, capsys, tmp_path):
    """Before any evaluation: a directory that is not there is said to be missing, and a run
    of another model (e.g. `--model pop`) is named as such, not as missing files."""
    if not (ir.DATA / "ml-100k.csv.gz").is_file():
        pytest.skip("needs ../shared/data/ml-100k.csv.gz")
    pop = tmp_path / "pop"
    pop.mkdir()
    (pop / ir.CONFIG).write_text('{"train": {"model": "pop"}}')
    for run_dir, expected in ((tmp_path / "absent", "no such directory"), (pop, "a pop run")):
        monkeypatch.setattr(sys, "argv", ["interest_retrieval.py", "--run", f"ml-100k={run_dir}"])
        with pytest.raises(SystemExit) as exit_:
            ir.main()
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
