"""The training loop says when batch preparation, not the model, sets the pace."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from incasem.training.loop import _BatchWaiting


def test_waiting_fraction_per_window_and_warning_when_preparation_is_the_bottleneck(caplog):
    prefetch = SimpleNamespace(waited_s=0.0)
    waiting = _BatchWaiting(prefetch)
    for _ in range(10):
        waiting.add(1.0)
    prefetch.waited_s = 4.0
    assert waiting.window_fraction() == 0.4
    waiting.new_window()
    waiting.add(1.0)
    assert waiting.window_fraction() == 0.0
    with caplog.at_level(logging.INFO):
        waiting.report(num_workers=3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "36%" in warnings[0] and "training.precache.num_workers (now 3)" in warnings[0]


def test_no_warning_when_the_model_sets_the_pace_and_nothing_without_prefetch(caplog):
    prefetch = SimpleNamespace(waited_s=0.05)
    waiting = _BatchWaiting(prefetch)
    waiting.add(1.0)
    unmeasured = _BatchWaiting(None)
    unmeasured.add(1.0)
    assert unmeasured.window_fraction() is None
    with caplog.at_level(logging.INFO):
        waiting.report(num_workers=1)
        unmeasured.report(num_workers=1)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in caplog.records] == [
        "waited for prepared batches 5% of the iterations' time"
    ]
