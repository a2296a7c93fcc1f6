"""Triggers: what starts a WorkflowRun besides a user creating one.

* events (``events.py``): a WorkflowEvent starts every Workflow of its namespace whose
  ``spec.triggers.events`` lists its key (exact, or a trailing ``*`` wildcard);
* cron schedules (``crons.py``): one CronJob per ``spec.triggers.crons`` entry, whose pod
  runs ``kubehatch trigger`` and creates one run per scheduled time;
* one-off times (``schedules.py``): each ``spec.triggers.at`` time starts one run.

The modules hold pure decisions over plain data; ``controller.py`` reads the store,
calls them and writes the result through the operator's one ``Kube``. The kopf
handlers that feed it are in ``kubehatch_operator.handlers`` with all the others.
"""
