"""The controller: the only layer that imports kopf. It glues Kubernetes, the pure core and the adapters."""
