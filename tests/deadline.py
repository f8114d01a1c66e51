"""The suite's one deadline for waiting on anything real: a process, a server, a browser.

A wait on a real condition (a port that opens, a page that renders, a child that exits)
ends as soon as the condition holds, so a generous deadline costs nothing when the machine
is idle and keeps the suite green when it is busy (CI shares its two cores with other
work). Any number smaller than this in such a wait is a guess about the machine.

pytest's own per-test limit (``timeout`` in pyproject.toml) is longer than this, so a
test's deadline fails first, with its own message saying what did not happen.
"""

DEADLINE = 120.0  # seconds
