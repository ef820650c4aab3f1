"""The thread policy (collage_core.threads): explicit numbers win, then NEURAL_COLLAGE_THREADS, then OMP_NUM_THREADS;
``auto`` leaves out the CPUs other programs keep busy; cgroup quotas (v1, v2) cap the usable CPUs."""

from __future__ import annotations

import pytest
import torch

from collage_core import threads as th


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (th.ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_parse_threads():
    assert th.parse_threads(None) is None and th.parse_threads("auto") is None and th.parse_threads(" AUTO ") is None
    assert th.parse_threads("3") == 3 and th.parse_threads(2) == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="neither a positive number nor 'auto'"):
            th.parse_threads(bad)


def test_order_of_precedence(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert th.choose_threads(None, sample=0) == th.ThreadChoice(3, "OMP_NUM_THREADS")
    monkeypatch.setenv(th.ENV, "5")
    assert th.choose_threads(None, sample=0) == th.ThreadChoice(5, th.ENV)
    assert th.choose_threads("2", sample=0) == th.ThreadChoice(2, "asked for")
    monkeypatch.setenv(th.ENV, "auto")  # auto in the variable falls through to the next rule
    assert th.choose_threads(None, sample=0).reason == "OMP_NUM_THREADS"


@pytest.mark.parametrize("busy,share,want", [(0.1, 1, 8), (2.0, 1, 6), (7.6, 1, 1), (9.0, 1, 1), (0.0, 3, 2),
                                             (5.0, 2, 3)])
def test_auto_leaves_out_busy_cpus(monkeypatch, busy, share, want):
    monkeypatch.setattr(th, "usable_cpus", lambda: 8)
    monkeypatch.setattr(th, "busy_cpus", lambda sample: busy)
    choice = th.choose_threads(None, share=share)
    assert choice.threads == want, choice
    assert choice.reason.startswith("auto: 8 usable CPUs")
    assert ("busy with other work" in choice.reason) == (round(8 - busy) < 8 // share)


def test_auto_without_proc_stat_uses_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(th, "usable_cpus", lambda: 4)
    monkeypatch.setattr(th, "busy_cpus", lambda sample: None)
    assert th.choose_threads() == th.ThreadChoice(4, "auto: 4 usable CPUs")


def test_busy_cpus_is_a_fraction_of_the_machine():
    busy = th.busy_cpus(0.05)
    if busy is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= busy <= (th.os.cpu_count() or 1) + 1e-9


def test_cgroup_quotas(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert th.cgroup_cpus(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert th.cgroup_cpus(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert th.cgroup_cpus(str(tmp_path)) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert th.cgroup_cpus(str(tmp_path)) is None
    assert th.cgroup_cpus(str(tmp_path / "none")) is None
    assert 1 <= th.usable_cpus() <= (th.os.cpu_count() or 1)


def test_apply_sets_torch_threads():
    assert th.apply_threads(th.ThreadChoice(1, "asked for")) == 1 and torch.get_num_threads() == 1
    assert str(th.ThreadChoice(1, "asked for")) == "1 thread (asked for)"
    assert str(th.ThreadChoice(2, "x")) == "2 threads (x)"
