"""The kubehatch operator: runs WorkflowRuns as Jobs, step by step.

Layers, from the bottom (import-linter checks them):

- plain data and pure decisions: `model` (what decisions read and return),
  `decisions`, `steps`, `transitions`, `admission`, `gates`, `retention`, and the pure
  parts of `triggers/` (`events`, `crons`, `schedules`, `status`, `model`); `jobs`
  builds step Job manifests;
- state and I/O: `store` (the watch-fed view of the cluster), `kube` (every API call),
  `workqueue` (per-key serialised, coalesced work), `settings`, `clock`, `metrics`;
- controllers: `reconciler` (one pass of one run: read, decide, write) and
  `triggers.controller` (events, cron CronJobs, one-off times);
- `handlers`: every kopf handler, thin, sharing one `Runtime` through kopf's memo.

From the SDK it imports only the API types (`kubehatch.api`, with the wire contract
in `kubehatch.api.wire`), `kubehatch.errors` and `kubehatch.durations`.
"""
