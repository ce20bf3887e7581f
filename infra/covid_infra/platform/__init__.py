"""Cluster platform: namespaces, CRDs, Linkerd, ingress, monitoring, data stores."""
