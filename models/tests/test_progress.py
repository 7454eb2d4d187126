"""models/progress.py: the JSON progress stream of models.train, its previews, and SIGTERM with a checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

from PIL import Image

from .conftest import REPO


def _events(text: str):
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"event"')]


def test_progress_json_and_previews(mvtec_dir, tmp_path, capsys):
    from models import train

    out = str(tmp_path / "run")
    code = train.main(["--data", mvtec_dir, "--out", out, "--size", "32", "--steps-student", "4", "--steps-seg", "2",
                       "--batch-size", "2", "--log-every", "2", "--random-teacher", "--progress-json", "-", "--preview-every", "2"])
    assert code == 0
    ev = _events(capsys.readouterr().out)
    kinds = [e["event"] for e in ev]
    # The floor (on by default) is not checked on 6 images, and the last event says so.
    assert kinds[0] == "start" and kinds[-2:] == ["done", "floor"], kinds
    assert ev[-1]["record"]["checked"] is False
    start = ev[0]
    assert start["images"] == 6 and start["size"] == 32 and start["steps"] == {"student": 4, "seg": 2} and len(start["fingerprint"]) == 64
    prog = [e for e in ev if e["event"] == "progress"]
    assert [(e["stage"], e["step"]) for e in prog] == [("student", 2), ("student", 4), ("seg", 2)]
    for e in prog:
        assert e["total"] in (4, 2) and e["loss"] > 0 and e["sec_per_step"] > 0 and e["losses"] == {e["stage"]: e["loss"]}
        assert e["eta_s"] >= 0 and set(e["elapsed_s"]) == {"student", "seg"}
        p = e["preview"]  # every logged step here: the first of each stage, then every 2 steps
        for name in ("image", "mask", "prediction"):
            im = Image.open(os.path.join(out, p[name]))
            assert im.size == (32 * 4, 32), (name, im.size)
    assert any(e["event"] == "stage" and e["stage"] == "calibrate" and "pixel" in e["thresholds"] for e in ev)
    assert ev[-2]["steps"] == {"student": 4, "seg": 2}


def test_without_progress_json_nothing_changes(mvtec_dir, tmp_path, capsys):
    from models import train

    out = str(tmp_path / "run")
    assert train.main(["--data", mvtec_dir, "--out", out, "--size", "32", "--steps-student", "2", "--steps-seg", "1",
                       "--batch-size", "2", "--random-teacher"]) == 0
    assert _events(capsys.readouterr().out) == []
    assert not os.path.exists(os.path.join(out, "previews"))


def test_sigterm_saves_checkpoint_and_resume_continues(mvtec_dir, tmp_path):
    out = str(tmp_path / "run")
    args = [sys.executable, "-m", "models.train", "--data", mvtec_dir, "--out", out, "--size", "32", "--steps-student", "100000",
            "--steps-seg", "1", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "100000", "--random-teacher",
            "--progress-json", "-", "--preview-every", "0", "--threads", "1"]
    p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.time() + 300
    for line in p.stdout:
        lines.append(line)
        if line.startswith('{"event":"progress"') and json.loads(line)["step"] >= 3:
            p.send_signal(signal.SIGTERM)
            break
        assert time.time() < deadline, "no progress within 5 minutes"
    rest, _ = p.communicate(timeout=300)
    assert p.returncode == 143, (p.returncode, rest)
    stopped = [e for e in _events(rest) if e["event"] == "stopped"]
    assert len(stopped) == 1 and stopped[0]["steps"]["student"] >= 3, rest
    at = stopped[0]["steps"]["student"]
    assert os.path.isfile(os.path.join(out, "checkpoint.pt"))

    args[args.index("100000")] = str(at + 2)
    r = subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ev = _events(r.stdout)
    assert ev[1]["event"] == "resumed" and ev[1]["steps"]["student"] == at, ev[:3]
    assert [e["step"] for e in ev if e["event"] == "progress" and e["stage"] == "student"] == [at + 1, at + 2]
