"""The cluster edge of the kit, on the official ``kubernetes`` client: the same code drives a
user's real cluster through their kubeconfig and the sim cluster. :mod:`.context` loads a
context, names the cluster behind it and guards writes against the wrong one; :mod:`.errors`
turns the client's failures into one-line ``ClusterError`` subclasses."""
