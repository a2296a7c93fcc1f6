"""Webhooks: a small HTTP receiver that turns signed POSTs into WorkflowEvents.

``kubehatch webhook serve --config FILE`` runs it (the chart's ``webhooks`` Deployment
does, in the operator's image). Each configured source has a URL, ``POST
/webhooks/<source>``, a signing secret kept in a Secret, a signature scheme (GitHub,
Stripe, or a generic HMAC-SHA256 header) and a rule for the event key (a fixed value, a
header, or a JSON path into the body). A request that passes becomes a WorkflowEvent
whose payload is the body: every Workflow listening for its key gets a run.

* :mod:`.config`: the sources (``WebhookConfig``, ``load_config``);
* :mod:`.verify`: signature checks and key extraction, pure functions;
* :mod:`.server`: the HTTP server (``WebhookServer``, ``Receiver``);
* :mod:`.cluster`: Secrets read and events pushed through :mod:`kubehatch.client`.
"""
