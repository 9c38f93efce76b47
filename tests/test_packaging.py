"""Installing the project as the README and the scripts do: `pip install -e .`, quietly."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_an_editable_install_puts_the_root_on_the_path_without_a_warning(tmp_path):
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target / "bin" / "python"),
            "install",
            "--verbose",  # the build backend's output, its warnings included
            "--no-deps",
            "--editable",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Editable install will be performed using .pth file" in out, out[-3000:]
    assert "Please be careful with folders in your working directory" not in out
    (pth,) = (target / "lib").glob("python3*/site-packages/__editable__.suara_warga-*.pth")
    assert pth.read_text().split() == [str(ROOT)]
