"""storage/prefetch.py: the publish's read-ahead thread keeps order, bounds memory, passes
errors on and lets go of its source when the consumer stops early."""

import threading

import pytest

from nbp_assets.publish.prefetch import prefetched


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))


def test_the_producer_runs_at_most_depth_items_ahead():
    made, ahead = [], []
    gate = threading.Event()

    def source():
        for n in range(20):
            made.append(n)
            yield n

    stream = prefetched(source(), depth=2)
    for consumed, item in enumerate(stream):
        gate.wait(0.05)  # a slow consumer: the producer would run to the end if unbounded
        ahead.append(len(made) - consumed)
    # queue (2) + the item handed out + the one the producer holds while the queue is full
    assert max(ahead) <= 2 + 2, ahead
    assert max(ahead) >= 2, ahead  # it does read ahead


def test_an_error_in_the_producer_is_raised_in_the_consumer_after_the_good_items():
    def source():
        yield 1
        yield 2
        raise ValueError("row 3 is bad")

    got = []
    with pytest.raises(ValueError, match="row 3 is bad"):
        for item in prefetched(source()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_closes_the_source_in_the_producer_thread():
    closed_in = []

    def source():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed_in.append(threading.current_thread().name)

    stream = prefetched(source(), depth=2)
    assert next(stream) == 0
    stream.close()  # what an exception in the consumer's loop does too
    assert closed_in == ["nbp-prefetch"]
    assert not any(t.name == "nbp-prefetch" for t in threading.enumerate())


def test_depth_below_one_is_refused():
    with pytest.raises(ValueError, match="depth"):
        list(prefetched(iter([1]), depth=0))
