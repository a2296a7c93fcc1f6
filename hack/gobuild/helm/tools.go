//go:build tools

// Package tools keeps the helm command in this wrapper module's graph.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
