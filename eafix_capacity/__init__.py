"""eafix-capacity: plan, deploy and verify EAFIX capacity on Kubernetes."""
