"""Do the tests issue 16 called weak fail when the behaviour they claim to check breaks?

For each test: copy the tracked tree to a temporary folder, run the test there (it must pass), apply
one deliberate break to the implementation, run it again (it must FAIL), and print a line per test.

    python benchmarks/break_weak_tests.py      # ~3 min on 2 cores; exit status 1 if a break survives

The copy sits next to a link to ../shared (tests that read AgentGym's transcripts find them there), and
the tests import the copy (PYTHONPATH), so the working tree is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (test id, file, text, the same text broken, what the break does)
BREAKS = [
    (
        "tests/test_prm.py::test_collate_pads_right",
        "agentprm/prm/batch.py",
        "        ids[b, : len(r)] = torch.tensor(r)\n        att[b, : len(r)] = 1\n",
        "        ids[b, width - len(r) :] = torch.tensor(r)\n        att[b, width - len(r) :] = 1\n",
        "collate pads on the left",
    ),
    (
        "tests/test_prm.py::test_heldout_spearman_against_mc_estimates",
        "agentprm/recipes/train_prm.py",
        "spearman([a for a, _ in pairs], [b for _, b in pairs])",
        "spearman([a for a, _ in pairs], [-b for _, b in pairs])",
        "held-out Spearman against sign-flipped MC estimates",
    ),
    (
        "tests/test_search.py::test_best_of_n_with_outcome_oracle_picks_best",
        "agentprm/rollout.py",
        "\n            ledger.env_steps += 1\n",
        "\n            ledger.env_steps += 0\n",
        "the collection ledger stops counting env steps",
    ),
    (
        "tests/test_types.py::test_properties",
        "agentprm/types.py",
        "        return [step.action for step in self.steps]\n",
        "        return [step.action for step in self.steps if step.action is not None]\n",
        "Trajectory.actions drops unparsed rounds",
    ),
    (
        "tests/test_textcraft.py::test_system_prompt_is_agentgyms",
        "agentprm/envs/textcraft.py",
        'Always specify the quantity when using "get"',
        'Always give the quantity when using "get"',
        "one word of the TextCraft instruction changed",
    ),
    (
        "tests/test_pipeline.py::test_sft_trains_saves_and_resumes",
        "agentprm/recipes/sft.py",
        "    if step < warm:\n        return (step + 1) / warm\n",
        "    if True:\n        return 0.0\n",
        "SFT's learning rate is zero (nothing is learnt)",
    ),
]


def _pytest(repo: Path, test: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:warnings", test]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True).returncode


def main() -> int:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    survived = 0
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        for name in files.stdout.splitlines():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / name).is_file():
                shutil.copy2(ROOT / name, repo / name)
        if (ROOT.parent / "shared").exists():
            (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
        for test, file, text, broken, what in BREAKS:
            path = repo / file
            original = path.read_text()
            if original.count(text) != 1:
                print(f"STALE   {test}: {file} no longer holds the text to break; update BREAKS")
                survived += 1
                continue
            intact = _pytest(repo, test)
            path.write_text(original.replace(text, broken))
            try:
                after = _pytest(repo, test)
            finally:
                path.write_text(original)
            ok = intact == 0 and after == 1
            survived += not ok
            verdict = "CAUGHT " if ok else "MISSED "
            print(f"{verdict} {test}: intact exit {intact}, broken ({what}) exit {after}")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
