//! Placeholder: the fake kube-apiserver is built by the operator issue.
