"""Workers that the e2e tests run on the cluster; baked into the e2e step image."""
