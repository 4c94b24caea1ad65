"""The safety room: what keeps a drill from leaving a fault behind.

- ``journal``  the append-only, fsynced record of every action; the fault ledger is derived from it
- ``lock``     one drill per stack at a time
- ``state``    the private state directory and the registry of live runs
- ``recover``  revert what a crashed run left applied (``drill recover``)
- ``strays``   faults that no live run owns (the stray scan, ``--force``)
"""
