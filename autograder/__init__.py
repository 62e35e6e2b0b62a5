"""autograder: the instructor pipeline of the course kit.

nbgrader supplies the assignment format, the release, the gradebook and the formgrader. This package
collects the LMS download of submissions, validates each notebook, grades each one in its own process with
a fresh kernel and time limits, records the grades in nbgrader's gradebook, and writes feedback (without the
hidden tests), a CSV export and a report. `adl-grade --help` lists the subcommands.
"""

__version__ = "0.1.0"
