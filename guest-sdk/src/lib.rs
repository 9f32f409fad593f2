//! Placeholder: the guest SDK is built by the rule-engine issue.
