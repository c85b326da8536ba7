"""The local Kubernetes API stand-in, split by concern (being moved here from local_stack.kube_api)."""
