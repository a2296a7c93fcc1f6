"""The guide's examples again, in the decorator style: ``wf = worker.workflow(...)``, ``@wf.step``.

Each module renders the same Workflow resources as the builder-style module of the same
name one level up (``tests/unit/sdk/test_decorators.py`` compares them), so the two
styles can be read side by side.
"""
