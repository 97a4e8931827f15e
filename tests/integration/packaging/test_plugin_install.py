"""Installed either way a team installs it, safeload is one Airflow plugin and no import error.

docker-compose.yaml and README use the project's ``plugins/`` as Airflow's plugins folder,
which Airflow puts on ``sys.path``: any package metadata an install leaves in it is a
second copy of the ``airflow.plugins`` entry point ("Plugin 'safeload' already
registered, skipping", shown as an import error in the UI). Each test installs a copy of
the project as a user does (``pip install -e .`` or ``pip install ./``, build isolation
and all) and loads Airflow's plugins in a fresh interpreter that sees that install and
every other package of this virtualenv, but not the virtualenv's own safeload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LOAD_PLUGINS = r"""
import json, site, sys
for folder in sys.argv[1:]:
    site.addsitedir(folder)  # the install under test first, then the rest of the virtualenv
import safeload
from airflow import plugins_manager
print(json.dumps({"plugins": [p["name"] for p in plugins_manager.get_plugin_info()],
                  "errors": plugins_manager.get_import_errors(), "safeload": safeload.__file__}))
"""


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "plugins", dest / "plugins",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.dist-info"))
    return dest


def _virtualenv_without_safeload(view: Path) -> Path:
    """This virtualenv's site-packages, less safeload's own install (symlinks)."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    view.mkdir()
    for entry in site_packages.iterdir():
        if "safeload" in entry.name.lower():  # safeload-*.dist-info, _editable_impl_safeload.pth, ...
            continue
        (view / entry.name).symlink_to(entry)
    return view


@pytest.mark.parametrize("editable", [pytest.param(True, id="pip install -e ."),
                                      pytest.param(False, id="pip install ./")])
def test_an_install_leaves_one_plugin_and_no_import_error(tmp_path, editable):
    project = _copy_project(tmp_path / "project")
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    proc = subprocess.run([*pip, *(["-e", "."] if editable else ["./"])], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    metadata = [p.relative_to(project) for p in project.rglob("*") if p.suffix in (".egg-info", ".dist-info")]
    assert metadata == [], f"the install wrote package metadata into the source tree: {metadata}"

    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    view = _virtualenv_without_safeload(tmp_path / "virtualenv")
    proc = subprocess.run([sys.executable, "-S", "-c", LOAD_PLUGINS, str(target), str(view)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["plugins"].count("safeload") == 1, loaded
    assert loaded["errors"] == {}, loaded["errors"]
    # the copy's install is the one Airflow loaded
    assert Path(loaded["safeload"]).resolve().is_relative_to(project if editable else target), loaded["safeload"]
