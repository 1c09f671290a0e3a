"""The story around the code, as data: the 2021 thread, each field's fate, what KVM merged."""
