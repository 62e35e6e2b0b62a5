"""nbgrader configuration of the course kit (read by `nbgrader` and by `adl-grade`).

Assignments are written once in source/<assignment>/ (solutions between ### BEGIN SOLUTION / ### END SOLUTION,
hidden tests between ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS) and turned into release/<assignment>/ by
`make release` (nbgrader generate_assignment). Everything the instructor pipeline produces (submissions,
autograded copies, feedback, the gradebook) goes under build/, which git ignores.

Set ADL_GRADEBOOK_URL to keep the gradebook elsewhere (for example a PostgreSQL URL).
"""

import os

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

_root = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "adl"
c.CourseDirectory.root = _root
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = os.path.join("build", "course", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("build", "course", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("build", "course", "feedback")
c.CourseDirectory.db_url = os.environ.get(
    "ADL_GRADEBOOK_URL", "sqlite:///" + os.path.join(_root, "build", "gradebook.db")
)
# Never copy caches, checkpoints or stray binaries from source/ into the student release: running a source
# notebook (nbval in CI, an instructor checking it) leaves the models it saves next to it.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".DS_Store",
    "*.keras",
    "*.h5",
    "wrong_answers.yml",  # the instructor's wrong-answer cases (autograder/cases.py)
    "sample_class.yml",
]  # hw1's sample class (autograder/sample_class.py)

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# The formgrader (autograder/README.md, "The formgrader"). Its pages render student notebooks on the instructor's
# Jupyter server: sanitise what they show (the worker stores them sanitised already; this is the second layer).
# nbgrader's own template renders Markdown cells without nbconvert's sanitiser, hence the preprocessor.
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.preprocessors = ["autograder.formgrader.SanitizeStudentContent"]
# adl-grade grades and writes the feedback. nbgrader's autograde (the formgrader's Autograde button, `nbgrader
# autograde`) would grade again without the sandbox and replace adl-grade's results; its generate_feedback would
# show students the hidden tests. Both refuse, with a message naming the adl-grade command to run. (A scratch
# copy that wants nbgrader's autograde anyway, as benchmarks/ does, passes
# --Autograde.exporter_class=nbconvert.exporters.NotebookExporter.)
c.Autograde.exporter_class = "autograder.formgrader.AutogradeDisabled"
c.GenerateFeedback.exporter_class = "autograder.formgrader.FeedbackDisabled"
