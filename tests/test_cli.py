"""The `sine` command: every option documented, errors as one line, not tracebacks."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import numpy as np
import pytest
from typer.testing import CliRunner

from sine.errors import SineError
from sine_cli.app import app
from trainer.config import TrainConfig, field_types

runner = CliRunner()


def test_train_help_documents_every_option():
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in result.output, f.name
    assert "--user-col" in result.output and "--config" in result.output
    # each training option shows its default (rich must not swallow "[default: ...]" as markup)
    flat = re.sub(r"[\s│]", "", result.output)  # the help wraps inside a box at 80 columns
    assert f"NDCG@10.[default:{TrainConfig().patience}]" in flat
    assert f"EmbeddingsizeD.[default:{TrainConfig().dim}]" in flat


def test_missing_column_is_one_line_error_with_exit_2(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user,item_id,timestamp\nu,a,1\n")
    result = runner.invoke(app, ["train", "--data", str(log), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "missing column" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_bad_option_value_is_a_clear_error(tmp_path, synthetic_csv):
    result = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(tmp_path / "r"),
                                 "--model", "bert"])
    assert result.exit_code == 2
    assert "--model must be one of sine, sasrec, pop" in result.stderr
    result = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(tmp_path / "r"),
                                 "--assignment-tau", "0"])
    assert result.exit_code == 2
    assert "--assignment-tau must be positive" in result.stderr


def test_config_file_then_flags(tmp_path, synthetic_csv):
    config = tmp_path / "train.toml"
    config.write_text('[train]\nmodel = "sine"\ndim = 16\nprototypes = 8\nepochs = 1\nseed = 3\n')
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(out), "-c", str(config),
                                 "--seed", "5", "--no-length-buckets", "--aggregation", "dot",
                                 "--assignment-tau", "0.25"])
    assert result.exit_code == 0, result.output + result.stderr
    saved = json.loads((out / "config.json").read_text())
    train = saved["train"]
    assert (train["dim"], train["prototypes"], train["seed"], train["length_buckets"]) == (16, 8, 5, False)
    # the model options reach the architecture (what the bundle records as hyper-parameters)
    assert (saved["architecture"]["aggregation"], saved["architecture"]["assignment_tau"]) == ("dot", 0.25)


def test_a_config_value_of_the_wrong_type_is_refused_by_its_flag(tmp_path, synthetic_csv):
    """A config file (or a bench script's --set) with "dim": "abc" ended in a TypeError
    traceback from the validation's comparisons; each value is now checked against its
    field's type, and a string that reads as the number the field wants is taken."""
    config = tmp_path / "train.json"
    config.write_text('{"dim": "abc"}')
    result = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(tmp_path / "r"),
                                 "-c", str(config)])
    assert result.exit_code == 2
    assert "--dim must be an integer, not 'abc'" in result.stderr
    assert not (tmp_path / "r").exists()
    for values, message in (({"lr": "fast"}, "--lr must be a number, not 'fast'"),
                            ({"dim": 64.5}, "--dim must be an integer, not 64.5"),
                            ({"epochs": True}, "--epochs must be an integer, not True"),
                            ({"label_aware": "yes"}, "--label-aware must be true or false"),
                            ({"device": True}, "--device must be a string, not True"),
                            ({"dim": None}, "--dim must be an integer, not None"),
                            ({"lr": "nan"}, "--lr must be a finite number, not nan"),
                            ({"lr": 10**400}, "--lr must be a number, not 1000")):
        with pytest.raises(SineError, match=re.escape(message)):
            TrainConfig.from_dict(values)
    # what JSON, TOML, KEY=VALUE and numpy write for a value the field can take is taken
    typed = TrainConfig.from_dict({"dim": "32", "attention_power": "inf", "lr": 1,
                                   "patience": 3.0, "reg_weight": np.float32(0.5),
                                   "epochs": np.int64(7), "memory_budget": 1073741824,
                                   "dropout": None, "init_from": None})
    assert typed.to_dict().items() >= {"dim": 32, "attention_power": float("inf"), "lr": 1.0,
                                       "patience": 3, "reg_weight": 0.5, "epochs": 7,
                                       "memory_budget": "1073741824", "dropout": None}.items()
    assert [type(v) for v in (typed.lr, typed.patience, typed.epochs)] == [float, int, int]
    # every field has a type the check knows (field_types raises for one it does not)
    assert set(field_types()) == {f.name for f in fields(TrainConfig)}
    # a run directory whose config.json holds such a value names the file, not a flag only
    run = tmp_path / "pop"
    assert runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(run),
                               "--model", "pop"]).exit_code == 0
    saved = json.loads((run / "config.json").read_text())
    saved["train"]["dim"] = "abc"
    (run / "config.json").write_text(json.dumps(saved))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2
    assert f"{run / 'config.json'}: --dim must be an integer, not 'abc'" in result.stderr
    for text, message in (('{"train": {', "Expecting"), ("[]", 'no table of training settings')):
        (run / "config.json").write_text(text)  # cut short, or not a run's config
        result = runner.invoke(app, ["evaluate", str(run)])
        assert result.exit_code == 2
        assert f"{run / 'config.json'}: " in result.stderr and message in result.stderr


def test_evaluate_reproduces_the_training_metrics(tmp_path, synthetic_csv):
    out = tmp_path / "run"
    trained = runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(out), "--model", "pop"])
    assert trained.exit_code == 0
    report = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", str(out), "--out", str(report)])
    assert result.exit_code == 0, result.stderr
    trained = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads(report.read_text())
    assert evaluated["test"] == trained["test"]
    assert "test_history_kept" in result.output


def test_evaluate_on_a_missing_run_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a run directory" in result.stderr


def test_synth_writes_a_log(tmp_path):
    out = tmp_path / "s.csv.gz"
    result = runner.invoke(app, ["synth", "-o", str(out), "--users", "50", "--items", "40", "--groups", "4"])
    assert result.exit_code == 0 and out.stat().st_size > 0


def test_a_file_the_process_may_not_read_is_one_line_naming_it_and_the_user(capsys):
    import os

    import pytest
    import typer

    from sine_cli.app import user_errors

    def command() -> None:
        raise PermissionError(13, "Permission denied", "/srv/bundles/v1/manifest.json")

    with pytest.raises(typer.Exit) as exit_:
        user_errors(command)()
    assert exit_.value.exit_code == 2
    err = capsys.readouterr().err
    assert "Permission denied: /srv/bundles/v1/manifest.json" in err and f"uid {os.getuid()}" in err
