"""The safety room: what keeps a drill from leaving a fault behind.

- ``lock``     one drill per stack at a time
- ``recover``  revert what a crashed run left applied (``drill recover``)
- ``strays``   faults that no live run owns (the stray scan, ``--force``)

The journal they read, its typed events and undo records, and the state directory live one floor
lower, in :mod:`harness.rundir`, so that faults and runtimes can write them without importing
this room.
"""
