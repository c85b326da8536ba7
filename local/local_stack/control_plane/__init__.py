"""A real kube-apiserver and etcd, built from Go modules, for the real-control-plane test tier."""
