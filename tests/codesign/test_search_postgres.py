"""Two search workers share one study on a real PostgreSQL server (Debian's, installed by make),
started here on loopback in a temporary directory."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

from codesign.front import distinct_completed
import pytest

from tests.codesign.test_search import QUICK

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed (make installs Debian's postgresql)")
    bin_dir = os.path.dirname(found[-1])
    # Not under pytest's tmp (mode 0700 for root): the server refuses to run as root, so as
    # root it runs as Debian's postgres user, which must reach its directory.
    root = Path(tempfile.mkdtemp(prefix="codesign-pg-"))
    data, port = root / "data", _free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")

    def run(*cmd):
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}{done.stderr}"
    run(f"{bin_dir}/initdb", "-D", str(data), "--auth=trust", "-U", "postgres")
    run(f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "start",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1")
    try:
        run(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "codesign")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/codesign"
    finally:
        run(f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(tmp_path, postgres):
    (tmp_path / "quick.yaml").write_text(QUICK)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "codesign", "search", str(tmp_path / "quick.yaml"), "--run-dir",
         str(run_dir), "--trials", "4", "--workers", "2", "--storage", postgres],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[worker 0]" in proc.stdout and "[worker 1]" in proc.stdout, proc.stdout[-3000:]
    assert not (run_dir / "study.db").exists()  # the study lives in the server
    study = optuna.load_study(study_name="quick", storage=postgres)
    # measured in full (a repeat of a candidate stopped early completes without metrics)
    done = distinct_completed(study)
    assert len(done) >= 4
    assert all(t.user_attrs["metrics"]["cycles"] > 0 for t in done)
    assert (run_dir / "report.md").exists()
