"""The kubehatch operator: runs WorkflowRuns as Jobs, step by step.

Modules are split by concept: pure decisions (`dag`, `decisions`), pure builders of
Kubernetes objects (`naming`, `jobs`), the in-memory view of the cluster (`store`), the
writes (`writer`), and thin kopf handlers (`handlers`) that read, decide and write.
"""
