"""Chaos runs: real worker processes SIGKILLed while intents flow (``python -m bench.chaos``).

``run`` drives a run, ``plan`` makes its intents, ``feeder`` sends them, ``fleet`` and
``zygote`` start and kill workers, ``world`` the servers, ``check`` and ``report`` judge it.
"""
