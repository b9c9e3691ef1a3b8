"""Progress lines of long loops: an ETA on every line, at a steady rate, under a fake clock (no sleeping)."""

from __future__ import annotations

import logging
import math
import re

import pytest

from tradeoff import progress as progress_mod
from tradeoff.progress import Progress, default_interval, progress, set_default_interval

LINE = re.compile(r"(\d+)/(\d+) (\w+) \[elapsed ([\d:]+), ETA ([\d:]+), ")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Records (fake time, message) of every line logged."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(logging.DEBUG)
        self.clock = clock
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.clock(), record.getMessage()))


@pytest.fixture
def setup():
    clock = FakeClock()
    logger = logging.getLogger("tradeoff.test_progress")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Lines(clock)
    logger.addHandler(handler)
    yield clock, logger, handler
    logger.removeHandler(handler)


def seconds(text: str) -> int:
    """[h:]mm:ss as tqdm prints it."""
    total = 0
    for part in text.split(":"):
        total = 60 * total + int(part)
    return total


def test_lines_at_a_steady_rate_with_a_correct_eta(setup):
    clock, logger, handler = setup
    step, interval, total = 0.37, 10.0, 1000
    with Progress(total, "attack pgd", unit="points", interval=interval, logger=logger, clock=clock) as bar:
        for _ in range(total):
            clock.now += step
            bar.update(1)
    times = [t for t, _ in handler.records]
    # first update, then one line per interval (each gap at least the interval and less than interval + one
    # step: no line is skipped or doubled), then the final count
    every = math.ceil(interval / step)  # updates between two lines
    assert len(handler.records) == 1 + (total - 1) // every + (1 if (total - 1) % every else 0)
    gaps = [b - a for a, b in zip(times[:-1], times[1:-1], strict=False)]
    assert gaps and all(interval - 1e-9 <= g < interval + step for g in gaps)
    for _, message in handler.records:
        m = LINE.search(message)
        assert m, message
        done, of, unit = int(m.group(1)), int(m.group(2)), m.group(3)
        assert (of, unit) == (total, "points")
        elapsed, eta = seconds(m.group(4)), seconds(m.group(5))
        assert abs(elapsed - done * step) <= 1
        # tqdm's ETA: remaining work at the average rate so far
        assert abs(eta - (total - done) * step) <= 1 + 0.01 * (total - done) * step
    assert LINE.search(handler.records[-1][1]).group(1) == str(total)
    assert "attack pgd: 100%" in handler.records[-1][1]


def test_first_update_logs_and_close_does_not_repeat_the_last_line(setup):
    clock, logger, handler = setup
    bar = Progress(5, "train", interval=60, logger=logger, clock=clock)
    assert handler.records == []  # nothing before work starts
    clock.now += 1
    bar.update(5)
    assert len(handler.records) == 1
    bar.close()
    bar.close()
    assert len(handler.records) == 1  # the final count was already logged


def test_tick_logs_within_a_long_unit(setup):
    clock, logger, handler = setup
    bar = Progress(2, "certify", unit="points", interval=10, logger=logger, clock=clock)
    bar.update(0)  # start
    for _ in range(25):  # one unit taking 50 s, with inner batches every 2 s
        clock.now += 2
        bar.tick()
    bar.update(1)
    bar.close()
    # start, the ticks at 10, 20, 30, 40, 50 s, and the final count
    assert [t - 1000 for t, _ in handler.records] == [0, 10, 20, 30, 40, 50, 50]
    assert "0/2 points" in handler.records[-2][1]
    assert "1/2 points" in handler.records[-1][1]


def test_zero_interval_logs_every_update_and_unknown_total_has_no_eta(setup):
    clock, logger, handler = setup
    with Progress(None, "sample", unit="samples", interval=0, logger=logger, clock=clock) as bar:
        for _ in range(4):
            clock.now += 1
            bar.update(100)
    assert len(handler.records) == 4
    assert "400 samples" in handler.records[-1][1] and "ETA" not in handler.records[-1][1]


def test_iterator_counts_items_and_logs_the_end_when_stopped_early(setup):
    clock, logger, handler = setup
    seen = []
    for item in progress(range(10), "loop", interval=100, logger=logger, clock=clock):
        clock.now += 1
        seen.append(item)
        if item == 6:
            break
    assert seen == list(range(7))
    assert "6/10" in handler.records[-1][1]  # an item counts once the loop asks for the next (as in tqdm)


def test_default_interval_from_the_environment_and_the_cli_override(monkeypatch):
    monkeypatch.setattr(progress_mod, "_override", None)
    monkeypatch.delenv(progress_mod.ENV_VAR, raising=False)
    assert default_interval() == progress_mod.DEFAULT_INTERVAL
    monkeypatch.setenv(progress_mod.ENV_VAR, "30")
    assert default_interval() == 30.0
    monkeypatch.setenv(progress_mod.ENV_VAR, "soon")
    assert default_interval() == progress_mod.DEFAULT_INTERVAL
    set_default_interval(5)
    assert default_interval() == 5.0 and Progress(1, "x").interval == 5.0
    with pytest.raises(ValueError):
        set_default_interval(-1)
    set_default_interval(None)
    assert default_interval() == progress_mod.DEFAULT_INTERVAL


def test_sampling_reports_every_chunk_without_changing_the_counts():
    """The sampling loop's progress hook sees each chunk once and leaves the noise stream alone."""
    import torch

    from tradeoff.certify.sampling import GaussianNoise, count_classes, point_generator

    model = torch.nn.Linear(3, 4)
    x = torch.tensor([0.2, -0.1, 0.4])
    sizes: list[int] = []
    with_hook = count_classes(model, x, 250, GaussianNoise(0.5), 4, 64, point_generator(0, 7), on_batch=sizes.append)
    without = count_classes(model, x, 250, GaussianNoise(0.5), 4, 64, point_generator(0, 7))
    assert sizes == [64, 64, 64, 58]
    assert with_hook.tolist() == without.tolist() and with_hook.sum() == 250
