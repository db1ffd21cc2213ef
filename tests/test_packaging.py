"""contract §7: `pip install .` into a clean virtual environment gives a working `omneo-bulk`,
and `pipeline` (with its SQL files) and `schemas` import. Built and installed for real."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pip_install_into_clean_venv_gives_a_working_command(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True, text=True, timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    help_text = subprocess.run([str(env_dir / "bin" / "omneo-bulk"), "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    for command in ("validate", "issue", "reconcile", "run"):
        assert command in help_text.stdout

    # Imported from the installed copy (run outside the source tree), SQL files included.
    probe = subprocess.run(
        [str(python), "-c",
         "import pipeline, schemas; from pipeline import db; "
         "print(pipeline.__file__); print(len(db.sql_text('plan_campaign')) > 0); "
         "print(sorted(schemas.DATASETS))"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    location, has_sql, datasets = probe.stdout.splitlines()
    assert str(env_dir) in location
    assert has_sql == "True"
    assert "transactions" in datasets and "profiles" in datasets

    # Every module of the source tree is in the installed copy: a subpackage left out of
    # pyproject's package list would install, pass the probe above and fail at `push`.
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("pipeline", "schemas") for path in (ROOT / folder).rglob("*.py")
    )
    imported = subprocess.run(
        [str(python), "-c", "import importlib, sys\n"
         "for name in sys.argv[1:]:\n    assert importlib.import_module(name).__file__.startswith(sys.prefix), name"
         , *modules],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    push_help = subprocess.run([str(env_dir / "bin" / "omneo-bulk"), "push", "--help"], capture_output=True, text=True,
                               cwd=tmp_path)
    assert push_help.returncode == 0, push_help.stderr
