"""Warm worker pools: ``kubehatch worker``, which runs a WorkerPool's steps.

A step on a pool is handed over as a WorkerTask (:mod:`kubehatch.api.workertask`); the
pool's workers watch their pool's tasks, and one claims each with a conditional status
write, keeps the claim by renewing it and reports the step's end the same way. The
worker's code is imported once, in a zygote process that forks a child per step, so a
step starts in about a millisecond, and a crash or an out-of-memory kill of one step
takes neither the worker nor the other steps with it.

- :mod:`~kubehatch._pool.claims`: the decisions, pure (what to claim, when to renew, how
  an exit is reported);
- :mod:`~kubehatch._pool.loop`: the loop that carries them out (one thread owns the state);
- :mod:`~kubehatch._pool.api`: the API calls and the watch;
- :mod:`~kubehatch._pool.runner` and :mod:`~kubehatch._pool.zygote`: the step processes;
- :mod:`~kubehatch._pool.worker`: all of it put together.
"""
