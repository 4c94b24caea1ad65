"""The safety room: what keeps a drill from leaving a fault behind.

- ``lock``     one drill per stack at a time
- ``recover``  revert what a crashed run left applied (``drill recover``), from its journal
- ``strays``   faults that no live run owns (the stray scan, ``--force``)

What they work from lives a floor below, in :mod:`harness.rundir`: the journal and its fault
ledger (``rundir/journal.py``, events catalogued in ``rundir/events.py``, undo records in
``rundir/undo.py``) and drill's private state directory with its registry of live runs
(``rundir/state.py``), so the runtime and the faults can use them without importing this room.
"""
