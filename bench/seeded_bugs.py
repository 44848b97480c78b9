"""Seeded transcription bugs: does the equation suite catch each one?

    .venv/bin/python bench/seeded_bugs.py            # all 21 bugs (~40 s each; 17 min on a busy machine)
    .venv/bin/python bench/seeded_bugs.py --only "log-Q removed"

For each bug, a temporary copy of the source (sine/, trainer/, tests/, pyproject.toml)
gets one textual change, and the model and loss tests run against that copy:
tests/test_sine_equations.py (the literal transcription of eqs. 1-11),
tests/test_sine_model.py and tests/test_loss.py. A bug is caught when at least one test
fails. The unmodified copy runs first and must pass, and every change must match its
source text exactly once (so a refactoring that moves the text is reported, not
silently skipped). Results: bench/results/seeded_bugs.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_sine_equations.py", "tests/test_sine_model.py", "tests/test_loss.py"]
COPIED = ["sine", "trainer", "tests", "pyproject.toml"]
SINE = "trainer/models/sine.py"
LOSS = "trainer/loss.py"

# name, file, [(source text, replacement)]; the first nine are the ones issue 12 lists
BUGS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("W1 in place of W3 in eq. (3)", SINE,
     [("F.normalize(self.ln1(self.w3(X))", "F.normalize(self.ln1(self.w1(X))")]),
    ("P(k|t) dropped from eq. (5)", SINE,
     [("weights = P_kt * P_tk", "weights = P_tk")]),
    ("X summed in eq. (5) (unweighted sum of the clicks)", SINE,
     [("interests = self.ln3(weights.transpose(1, 2) @ X)",
       "interests = self.ln3(X.sum(1, keepdim=True).expand(-1, K, -1))")]),
    ("X + positions summed in eq. (5)", SINE,
     [("interests = self.ln3(weights.transpose(1, 2) @ X)",
       "interests = self.ln3(weights.transpose(1, 2) @ Xp)")]),
    ("X in place of X-hat in eq. (6)", SINE,
     [("b = attention_scores(X_hat,", "b = attention_scores(X,"),
      ("(b.transpose(1, 2) @ X_hat)", "(b.transpose(1, 2) @ X)")]),
    ("dot product in place of the cosine in eq. (7) (cosine variant)", SINE,
     [("similarity = F.normalize(interests, dim=-1) @ F.normalize(C_apt, dim=-1).unsqueeze(-1)",
       "similarity = interests @ C_apt.unsqueeze(-1)")]),
    ("one W_{k|2} shared by all k (eq. 4)", SINE,
     [("(hidden * (2.0 * self.wk2))", "(hidden * (2.0 * self.wk2[:1]))")]),
    ("LayerNorm_3 dropped from eq. (5)", SINE,
     [("interests = self.ln3(weights.transpose(1, 2) @ X)",
       "interests = weights.transpose(1, 2) @ X")]),
    ("accidental-hit masking removed (sampled softmax)", LOSS,
     [('negative = negative.masked_fill(sampled.unsqueeze(0) == targets.unsqueeze(1), '
       'float("-inf"))', "negative = negative")]),
    ("log-Q removed (sampled softmax)", LOSS,
     [("- (log_q[sampled - 1] + correction)", "- correction")]),
    # more of the same kind
    ("one W_{k|1} shared by all k (eq. 4)", SINE,
     [("Xp @ (2.0 * self.wk1)", "Xp @ (2.0 * self.wk1[:, :D].repeat(1, K))")]),
    ("positions not added in eq. (4)", SINE,
     [("Xp = X + self.position_embedding(recency_positions(S, clicks.device))", "Xp = X")]),
    ("sigmoid gate dropped from eq. (2)", SINE,
     [("Cu = self.prototypes[idx] * torch.sigmoid(top_scores).unsqueeze(-1)",
       "Cu = self.prototypes[idx]")]),
    ("LayerNorm_1 dropped from eq. (3)", SINE,
     [("F.normalize(self.ln1(self.w3(X)), dim=-1)", "F.normalize(self.w3(X), dim=-1)")]),
    ("LayerNorm_4 dropped from eq. (6)", SINE,
     [("C_apt = self.ln4((b.transpose(1, 2) @ X_hat).squeeze(1))",
       "C_apt = (b.transpose(1, 2) @ X_hat).squeeze(1)")]),
    ("assignment temperature ignored in eq. (3)", SINE,
     [("concept_side.transpose(1, 2) / cfg.assignment_tau", "concept_side.transpose(1, 2)")]),
    ("padding not masked in eq. (1)", SINE,
     [("a = torch.softmax(a.masked_fill(padded, -math.inf), dim=1)",
       "a = torch.softmax(a, dim=1)")]),
    ("softmax over interests, not positions, in eq. (4)", SINE,
     [("P_tk = torch.softmax(scores_tk.masked_fill(padded, -math.inf), dim=1)",
       "P_tk = torch.softmax(scores_tk, dim=-1)")]),
    ("diagonal not subtracted in eq. (10)", SINE,
     [("return 0.5 * (frobenius - diagonal)", "return 0.5 * frobenius")]),
    ("lambda ignored in eq. (11)", SINE,
     [("return self.config.reg_weight * self.covariance_loss()",
       "return 0.5 * self.covariance_loss()")]),
    ("bf16 logits fed to the softmax", LOSS,
     [("    return (a @ b).float()\n", "    return a @ b\n")]),
]


def make_copy(dest: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)


def apply(dest: Path, path: str, changes: list[tuple[str, str]]) -> None:
    target = dest / path
    text = target.read_text()
    for old, new in changes:
        found = text.count(old)
        if found != 1:
            raise SystemExit(f"{path}: the text to change occurs {found} times, not once: {old!r}")
        text = text.replace(old, new)
    target.write_text(text)


def run_tests(dest: Path) -> tuple[list[str], int, str]:
    """Failed test ids, pytest's exit code, and the summary line."""
    env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-rf",
         *TESTS],
        cwd=dest, env=env, capture_output=True, text=True, timeout=900,
    )
    failed = sorted(set(re.findall(r"^FAILED (\S+)", proc.stdout, re.MULTILINE)))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return failed, proc.returncode, summary


def check_imports(dest: Path) -> None:
    """The copy's modules, not the worktree's, are the ones under test."""
    env = {**os.environ, "PYTHONPATH": str(dest)}
    out = subprocess.run([sys.executable, "-c", "import trainer.loss; print(trainer.loss.__file__)"],
                         cwd=dest, env=env, capture_output=True, text=True, check=True).stdout
    if not Path(out.strip()).resolve().is_relative_to(dest.resolve()):
        raise SystemExit(f"the copy imports {out.strip()}, not its own source")


def markdown(results: dict) -> str:
    lines = ["# Seeded transcription bugs (bench/seeded_bugs.py)", "",
             f"Tests run against each bug: {', '.join(results['tests'])}. Unmodified copy: "
             f"{results['baseline']['summary']}.", "",
             f"**{results['caught']} of {len(results['bugs'])} bugs caught.**", "",
             "| bug | file | caught | failing tests |", "| --- | --- | --- | --- |"]
    for bug in results["bugs"]:
        failing = "<br>".join(f"`{t.split('::', 1)[1]}`" for t in bug["failed"]) or "none"
        lines.append(f"| {bug['name']} | `{bug['file']}` | {'yes' if bug['caught'] else '**NO**'} "
                     f"| {failing} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="names of the bugs to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "seeded_bugs.json")
    args = parser.parse_args()
    bugs = [b for b in BUGS if not args.only or b[0] in args.only]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sine-seeded-") as tmp:
        clean = Path(tmp) / "clean"
        make_copy(clean)
        check_imports(clean)
        failed, code, summary = run_tests(clean)
        print(f"unmodified copy: {summary}", flush=True)
        if code != 0:
            raise SystemExit(f"the unmodified copy fails {failed}: fix the suite first")
        results: dict = {"tests": TESTS, "baseline": {"summary": summary}, "bugs": []}
        for name, path, changes in bugs:
            dest = Path(tmp) / f"bug{len(results['bugs'])}"
            make_copy(dest)
            apply(dest, path, changes)
            failed, code, summary = run_tests(dest)
            caught = code != 0
            results["bugs"].append({"name": name, "file": path, "changes": changes,
                                    "caught": caught, "failed": failed, "summary": summary})
            print(f"{'caught' if caught else 'MISSED'}: {name}: {summary}", flush=True)
            shutil.rmtree(dest)
    results["caught"] = sum(b["caught"] for b in results["bugs"])
    results["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(f"{results['caught']} of {len(results['bugs'])} caught; wrote {args.out}")
    if results["caught"] < len(results["bugs"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
